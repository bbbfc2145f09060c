"""Stream listeners on asyncio: syslog over TCP and TLS (RFC 6587 framing) and RELP (plain or TLS).

Each connection reads at most `Limits.read_bytes` at a time, frames what it read, and hands the
messages to the intake as one batch in a worker thread (an append waits for fsync), reading nothing
more until the batch is durable: a slow or full spool slows the reads, the kernel's receive window
fills, and the sender is pushed back. Nothing a sender does grows memory past one read plus one
message per connection, and the number of connections is capped.

RELP acknowledges every `syslog` frame with `200 OK` only after its record is in the spool, `500
<reason>` when the sender is refused. When the spool is full, acknowledgements are held (and reading
stops) until it has room; librelp drops a frame answered with 500, so a full spool never answers 500:
on shutdown a held session gets `serverclose` without acks and the client resends those frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal, TypeVar

import pyarrow as pa
import structlog

from collectors.attribution import Credential, Transport
from collectors.intake import ForeignContent, Intake, NotAttributed, RateLimitedLog, SpoolFullError
from collectors.listeners import relp
from collectors.listeners.config import Limits, ListenAddress
from collectors.listeners.framing import FramingError, Message, SyslogFramer
from collectors.listeners.tls import peer_credential
from collectors.records import RawRecord, RecordBlock, binary_column

_CUT = attrgetter("cut")  # Message.cut
log = structlog.get_logger("collectors.listeners")
T = TypeVar("T")
Protocol = Literal["syslog", "relp"]


class StreamListener:
    """One listening socket of syslog-over-TCP/TLS or RELP(-over-TLS), and its connections."""

    def __init__(self, protocol: Protocol, address: ListenAddress, *, intake: Intake, executor: Executor,
                 limits: Limits, warnings: RateLimitedLog, ssl_context: ssl.SSLContext | None = None,
                 in_flight: asyncio.Semaphore | None = None) -> None:
        self.protocol = protocol
        self.address = address
        self.transport: Transport = ("tls" if ssl_context else "tcp") if protocol == "syslog" else "relp"
        self.intake = intake
        self.executor = executor
        self.limits = limits
        self.warnings = warnings
        self._ssl = ssl_context
        # shared by the service's stream listeners: reads being framed and appended at once (Limits)
        self.in_flight = in_flight or asyncio.Semaphore(limits.batches_in_flight)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return f"{self.protocol}-{'tls' if self._ssl else 'plain'}"

    async def start(self) -> list[str]:
        """Listen; returns the bound addresses (port 0 becomes the port the system chose)."""
        self._server = await asyncio.start_server(self._connection, self.address.host, self.address.port,
                                                  ssl=self._ssl, limit=self.limits.read_bytes,
                                                  ssl_handshake_timeout=30 if self._ssl else None)
        return [_format(sock.getsockname()) for sock in self._server.sockets]

    async def close(self, *, grace: float) -> None:
        """Stop accepting; connections finish the batch in hand (and RELP says `serverclose`) within
        `grace` seconds, then they are cut."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=grace)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        host, port = _peer(writer)
        if len(self._connections) >= self.limits.max_connections:
            self.warnings.warning(f"connections {self.name}", "connection limit reached; closing new connections",
                                  listener=self.name, limit=self.limits.max_connections, peer=host)
            await _close(writer)
            return
        self._connections.add(task)
        try:
            credential = peer_credential(writer.get_extra_info("ssl_object"))
            connection = _Connection(self, reader, writer, host=host, port=port, credential=credential)
            if self.protocol == "syslog":
                await connection.syslog_session()
            else:
                await connection.relp_session()
        except (ConnectionError, ssl.SSLError, TimeoutError) as error:
            log.info("connection ended", listener=self.name, peer=f"{host}:{port}", error=str(error))
        except asyncio.CancelledError:
            pass  # shutdown: the connection has finished what it could
        except Exception:  # one broken session must not take the listener down
            log.exception("connection failed", listener=self.name, peer=f"{host}:{port}")
        finally:
            self._connections.discard(task)
            await _close(writer)


class _Connection:
    """One sender's session: framing, delivery to the intake, and answers."""

    def __init__(self, listener: StreamListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 host: str, port: int, credential: Credential | None) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.credential = credential
        self.transport = listener.transport
        self.intake = listener.intake
        self.limits = listener.limits
        self.warnings = listener.warnings
        self.sequence = 0
        self.expected, self.opened = 1, False  # RELP: the next txnr due, and whether `open` succeeded
        self.stopping = False  # shutdown came while a batch was in hand: answer for it, then end the session

    # --- syslog over TCP / TLS -----------------------------------------------------------------------

    async def syslog_session(self) -> None:
        if not self._attributed():
            return
        framer = SyslogFramer(max_bytes=self.limits.max_message_bytes)
        while True:
            data = await self.reader.read(self.limits.read_bytes)
            async with self.listener.in_flight:
                payloads = framer.feed_column(data) if data else None
                if payloads is not None:
                    if len(payloads) and not await self._deliver_block(payloads):
                        return
                else:
                    try:
                        messages = framer.feed(data) if data else framer.finish()
                    except FramingError as error:
                        self.warnings.warning(f"framing {self.host}", "framing error; connection closed",
                                              peer=self.host, transport=self.transport, error=str(error))
                        return
                    if messages and not await self._deliver_syslog(messages):
                        return
            if not data or self.stopping:
                return

    async def _deliver_block(self, payloads: pa.Array) -> bool:
        """Whole messages of one read, as one record block (no object per message); False as `_deliver_syslog`."""
        block = RecordBlock.run(payloads, received=datetime.now(UTC), first=self.sequence + 1,
                                origin_prefix=f"{self.transport} {self.host}:{self.port} #")
        self.sequence += len(payloads)
        return await self._accept_or_refuse(block, sent=len(block))

    async def _accept_or_refuse(self, records: Sequence[RawRecord], *, sent: int) -> bool:
        """Append `records`: a refusal is counted and logged; False when the sender is no longer attributed
        (`sent`, the messages of the read, are then refused), a batch naming another tenant is dropped alone."""
        try:
            await self._append(records)
        except NotAttributed as refused:
            self._refused(refused, sent)
            return False
        except ForeignContent as refused:
            self._refused(refused, len(records))
        return True

    async def _deliver_syslog(self, messages: Sequence[Message]) -> bool:
        """False when the sender is no longer attributed (the connection is then closed)."""
        if not any(map(_CUT, messages)):  # a connection's first read or an octet-counted one: a block too
            return await self._deliver_block(binary_column([message.payload for message in messages]))
        received = datetime.now(UTC)
        prefix = f"{self.transport} {self.host}:{self.port} #"
        records = [RawRecord(message.payload, f"{prefix}{number}", received)
                   for number, message in enumerate(messages, self.sequence + 1)]
        self.sequence += len(messages)
        cut: list[tuple[RawRecord, int]] = []
        if any(map(_CUT, messages)):
            cut = [(record, message.size) for record, message in zip(records, messages, strict=True) if message.cut]
            records = [record for record, message in zip(records, messages, strict=True) if not message.cut]
        if cut:
            try:
                await self._in_worker(lambda: self.intake.reject(
                    [record for record, _ in cut], reason=_cut_reason(cut[0][1], self.limits.max_message_bytes),
                    peer=self.host, transport=self.transport, credential=self.credential))
            except NotAttributed as refused:
                self._refused(refused, len(messages))
                return False
        return not records or await self._accept_or_refuse(records, sent=len(messages))

    # --- RELP ----------------------------------------------------------------------------------------

    async def relp_session(self) -> None:
        parser = relp.RelpParser(max_data=self.limits.max_relp_data_bytes)
        try:
            while data := await self.reader.read(self.limits.read_bytes):
                async with self.listener.in_flight:  # answers are sent after: a client slow to read them holds none
                    replies, over = await self._relp_commands(parser.feed(data))
                await self._send(replies)
                if over:
                    return
                if self.stopping:
                    raise asyncio.CancelledError  # the batch in hand is answered: now say serverclose
        except relp.RelpProtocolError as error:
            self.warnings.warning(f"relp {self.host}", "RELP protocol error; session aborted",
                                  peer=self.host, error=str(error))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # a hint only: the client copes with a plain close too
                self.writer.write(relp.SERVER_CLOSE)
                await asyncio.wait_for(self.writer.drain(), timeout=5)
            raise

    async def _relp_commands(self, frames: list[relp.RelpFrame]) -> tuple[bytes, bool]:
        """The answers to `frames`, in their order, and whether the session is over (closed, or refused at open)."""
        replies, batch = bytearray(), list[relp.RelpFrame]()
        for frame in frames:
            if frame.txnr == 0:
                continue  # a hint; hints are never answered
            if frame.txnr != self.expected:
                raise relp.RelpProtocolError(f"txnr {frame.txnr} where {self.expected} was due")
            self.expected = relp.next_txnr(self.expected)
            if frame.command == "syslog" and self.opened:
                batch.append(frame)
                continue
            replies += await self._relp_batch(batch)  # the syslog frames before this command are answered first
            batch = []
            if frame.command == "open" and not self.opened:
                answer, self.opened = relp.open_response(frame.txnr, relp.parse_offers(frame.data))
                replies += answer
                if not self.opened:
                    return bytes(replies), True
            elif frame.command == "close":
                return bytes(replies + relp.close_response(frame.txnr)), True
            elif not self.opened:
                raise relp.RelpProtocolError(f"{frame.command!r} before open")
            else:
                replies += relp.error(frame.txnr, f"command {frame.command} not supported")
        replies += await self._relp_batch(batch)
        return bytes(replies), False

    async def _relp_batch(self, frames: list[relp.RelpFrame]) -> bytes:
        """Make the batch durable, then its acknowledgements (in order); 500 with the reason if refused."""
        if not frames:
            return b""
        received = datetime.now(UTC)
        records = {frame.txnr: RawRecord(frame.data, f"relp {self.host} txnr {frame.txnr}", received)
                   for frame in frames if frame.data}
        cut = [records.pop(frame.txnr) for frame in frames if frame.cut]
        refusals: dict[int, str] = {}
        try:
            if cut:
                size = max(frame.size for frame in frames if frame.cut)
                await self._in_worker(lambda: self.intake.reject(
                    cut, reason=_cut_reason(size, self.limits.max_relp_data_bytes), peer=self.host,
                    transport=self.transport, credential=self.credential))
            if records:
                await self._append(list(records.values()))
        except NotAttributed as refused:
            self._refused(refused, len(frames))
            refusals = {frame.txnr: refused.reason for frame in frames}
        except ForeignContent:
            refusals = await self._one_by_one(records)
        return b"".join(relp.error(frame.txnr, refusals[frame.txnr]) if frame.txnr in refusals else relp.ok(frame.txnr)
                        for frame in frames)

    async def _one_by_one(self, records: dict[int, RawRecord]) -> dict[int, str]:
        """A batch one record named a foreign account in: take the others, refuse only that one."""
        refusals = {}
        for txnr, record in records.items():
            try:
                await self._append([record])
            except (NotAttributed, ForeignContent) as refused:
                self._refused(refused, 1)
                refusals[txnr] = refused.reason
        return refusals

    async def _send(self, data: bytes | bytearray) -> None:
        if data:
            self.writer.write(data)
            await self.writer.drain()

    # --- shared --------------------------------------------------------------------------------------

    def _attributed(self) -> bool:
        """Refuse a sender no source claims before reading anything from it."""
        try:
            self.intake.resolve(peer=self.host, transport=self.transport, credential=self.credential)
        except NotAttributed as refused:
            self.intake.stats.add(self.transport, "refused connections")
            self._refused(refused, 0)
            return False
        return True

    async def _append(self, records: Sequence[RawRecord]) -> None:
        """Accept `records`; while the spool is full, wait and try again (nothing more is read meanwhile)."""
        while True:
            try:
                await self._in_worker(lambda: self.intake.accept(records, peer=self.host, transport=self.transport,
                                                                 credential=self.credential))
                return
            except SpoolFullError:
                self.intake.stats.add(self.transport, "full", len(records))
                self.warnings.warning("spool full", "spool full; holding senders until it drains",
                                      transport=self.transport, peer=self.host)
            try:
                if self.stopping:
                    raise asyncio.CancelledError
                await asyncio.sleep(self.limits.spool_retry_seconds)
            except asyncio.CancelledError:
                # RELP senders resend what was never acknowledged; plain syslog has no way to know
                lost = "unacknowledged" if self.transport == "relp" else "dropped"
                self.intake.stats.add(self.transport, lost, len(records))
                log.warning(f"shutdown while the spool was full: records {lost}", transport=self.transport,
                            peer=self.host, records=len(records))
                raise

    async def _in_worker(self, call: Callable[[], T]) -> T:
        """Run `call` in a worker thread. If the connection is cancelled (shutdown) meanwhile, the call is
        finished and its result returned: a batch being made durable is never abandoned half-way, and
        the session ends once it has answered for it (`stopping`)."""
        future = asyncio.get_running_loop().run_in_executor(self.listener.executor, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stopping = True
            return await future

    def _refused(self, refused: NotAttributed | ForeignContent, records: int) -> None:
        self.intake.stats.add(self.transport, "refused", records)
        self.warnings.warning(f"refused {self.transport} {self.host}", "sender refused",
                              peer=self.host, transport=self.transport, reason=refused.reason)


def _cut_reason(size: int, limit: int) -> str:
    return (f"message of {size} bytes is over the listener's limit of {limit} bytes: its first {limit} bytes "
            "are kept here and nothing was stored; split the message or raise the limit")


def _peer(writer: asyncio.StreamWriter) -> tuple[str, int]:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return str(peer), 0


def _format(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout=5)
