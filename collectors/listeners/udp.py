"""Syslog over UDP: one datagram is one record.

Datagrams are queued as they arrive and handed to the intake in batches (one per sender address) by
one task, so a burst costs one spool append per sender rather than one per datagram. UDP cannot push
back on a sender: when the queue holds its bound (`Limits.udp_pending_*`) or the spool is full,
datagrams are dropped and counted, and a warning is logged once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import structlog

from collectors.intake import ForeignContent, Intake, NotAttributed, RateLimitedLog, SpoolFullError
from collectors.listeners.config import Limits, ListenAddress
from collectors.records import RawRecord

log = structlog.get_logger("collectors.listeners")
_RECEIVE_BUFFER = 4 * 1024 * 1024  # absorbs a burst while a batch is being made durable


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, address: ListenAddress, *, intake: Intake, executor: Executor, limits: Limits,
                 warnings: RateLimitedLog) -> None:
        self.address = address
        self._intake = intake
        self._executor = executor
        self._limits = limits
        self._warnings = warnings
        self._pending: list[tuple[str, int, bytes, datetime]] = []
        self._pending_bytes = 0
        self._ready = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> list[str]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        sock.bind((self.address.host, self.address.port))
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._transport = transport
        self._flusher = asyncio.create_task(self._flush_forever())
        host, port = sock.getsockname()[:2]
        return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]

    async def close(self, *, grace: float) -> None:
        """Stop receiving, then hand over what is queued."""
        if self._transport is not None:
            self._transport.close()
        self._closing = True
        self._ready.set()
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=grace)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if (len(self._pending) >= self._limits.udp_pending_records
                or self._pending_bytes + len(data) > self._limits.udp_pending_bytes):
            self._intake.stats.add("udp", "dropped")
            self._warnings.warning("udp queue", "UDP queue full; dropping datagrams", peer=host,
                                   queued=len(self._pending))
            return
        self._pending.append((host, port, data, datetime.now(UTC)))
        self._pending_bytes += len(data)
        self._ready.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            if pending:
                await self._deliver(pending)
            if self._closing and not self._pending:
                return

    async def _deliver(self, pending: list[tuple[str, int, bytes, datetime]]) -> None:
        by_sender: dict[str, tuple[list[RawRecord], list[RawRecord]]] = defaultdict(lambda: ([], []))
        limit = self._limits.max_message_bytes
        for host, port, data, received in pending:
            payload = data.rstrip(b"\r\n")  # a trailing line end is transport habit, not content
            if not payload:
                continue
            whole, cut = by_sender[host]
            record = RawRecord(payload[:limit], f"udp {host}:{port}", received)
            (cut if len(payload) > limit else whole).append(record)
        await asyncio.gather(*(self._deliver_from(host, whole, cut) for host, (whole, cut) in by_sender.items()))

    async def _deliver_from(self, host: str, records: list[RawRecord], cut: list[RawRecord]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if cut:
                reason = (f"datagram over the listener's limit of {self._limits.max_message_bytes} bytes: its first "
                          "bytes are kept here and nothing was stored")
                await loop.run_in_executor(self._executor, lambda: self._intake.reject(
                    cut, reason=reason, peer=host, transport="udp", credential=None))
            if records:
                await loop.run_in_executor(self._executor, lambda: self._intake.accept(
                    records, peer=host, transport="udp", credential=None))
        except (NotAttributed, ForeignContent) as refused:
            self._intake.stats.add("udp", "refused", len(records) + len(cut))
            self._warnings.warning(f"refused udp {host}", "sender refused", peer=host, transport="udp",
                                   reason=refused.reason)
        except SpoolFullError:
            self._intake.stats.add("udp", "dropped", len(records))
            self._warnings.warning("spool full udp", "spool full; dropping datagrams", peer=host,
                                   records=len(records))
        except Exception:  # a failing append must not stop the listener; the datagrams are lost and said so
            self._intake.stats.add("udp", "dropped", len(records))
            log.exception("UDP batch failed", peer=host, records=len(records))

    def error_received(self, exc: Exception) -> None:
        log.info("UDP receive error", error=str(exc))
