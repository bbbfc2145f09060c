"""The intake service: every listener on one asyncio loop, the drainer and the registry reloader beside it.

Shutdown (SIGTERM, SIGINT) runs in this order, so nothing acknowledged is lost and nothing half-done is
left: stop accepting; let each connection finish the batch in hand (RELP sessions get `serverclose`)
and HTTP finish its requests; hand over queued datagrams; then stop the drainer, which drains what the
spool still holds before it returns. SIGHUP reloads the source registry at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog
import uvicorn
from starlette.applications import Starlette

from collectors.errors import CollectorError
from collectors.google_id import GoogleIdTokens
from collectors.intake import Intake, RateLimitedLog, ReloadingRegistry
from collectors.listeners.config import Limits, ListenAddress, ListenerKind, ListenerPlan
from collectors.listeners.http import http_app
from collectors.listeners.streams import StreamListener
from collectors.listeners.tls import TlsFiles, server_context
from collectors.listeners.udp import UdpListener

log = structlog.get_logger("collectors.listeners")
_STATS_EVERY_SECONDS = 60.0


class ListenerStartError(CollectorError):
    """A listener could not bind its address."""


class SpoolDrainer(Protocol):
    """What the service needs of `collectors.drain.Drainer`: drain until stopped, then what is left."""

    def run(self, stop: threading.Event) -> None: ...


class Listener(Protocol):
    async def start(self) -> list[str]: ...

    async def close(self, *, grace: float) -> None: ...


class IntakeService:
    """Runs the listeners of `plan` for `intake` until stopped (see the module doc)."""

    def __init__(self, intake: Intake, plan: ListenerPlan, *, limits: Limits | None = None,
                 tls: TlsFiles | None = None, drainer: SpoolDrainer | None = None,
                 registry: ReloadingRegistry | None = None, warnings: RateLimitedLog | None = None,
                 workers: int = 8, grace: float = 30.0, id_tokens: GoogleIdTokens | None = None) -> None:
        if plan.needs_tls() and tls is None:
            raise ListenerStartError("a TLS listener needs a server certificate and key")
        self.intake = intake
        self.plan = plan
        self.limits = limits or Limits()
        self.tls = tls
        self.drainer = drainer
        self.registry = registry
        self.warnings = warnings or RateLimitedLog()
        self.workers = workers
        self.grace = grace
        self.id_tokens = id_tokens or GoogleIdTokens()  # one certificate cache for every HTTP listener
        self.bound: dict[ListenerKind, list[str]] = {}  # the addresses listened on, once `ready` is set
        self.ready = threading.Event()
        self._in_flight = asyncio.Semaphore(self.limits.batches_in_flight)  # shared by the stream listeners

    def serve(self) -> None:
        """Run in the foreground until SIGTERM or SIGINT."""
        asyncio.run(self._serve_with_signals())

    async def _serve_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if self.registry is not None:
            loop.add_signal_handler(signal.SIGHUP, self.registry.wake)
        await self.run(stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, then shut down in order."""
        if self.drainer is None:
            log.warning("no drainer: records stay in the spool until one runs")
        executor = ThreadPoolExecutor(self.workers, thread_name_prefix="intake")
        background_stop = threading.Event()
        threads = self._background(background_stop)
        listeners: list[Listener] = []
        try:
            for kind, addresses in self.plan.addresses.items():
                for address in addresses:
                    listener = self._listener(kind, address, executor)
                    try:
                        bound = await listener.start()
                    except OSError as error:
                        raise ListenerStartError(f"cannot listen for {kind} on {address}: {error.strerror or error}; "
                                                 f"choose another address (--{kind} HOST:PORT) or stop what uses it"
                                                 ) from None
                    listeners.append(listener)
                    self.bound.setdefault(kind, []).extend(bound)
                    for where in bound:
                        log.info("listening", listener=kind, address=where)
            log.info("intake ready", listeners={kind: len(v) for kind, v in self.bound.items()})
            self.ready.set()
            stats = asyncio.create_task(self._log_stats())
            await stop.wait()
            stats.cancel()
            log.info("stopping: no new connections; finishing batches in hand")
        finally:
            await asyncio.gather(*(listener.close(grace=self.grace) for listener in listeners))
            background_stop.set()
            if self.registry is not None:
                self.registry.wake()
            await asyncio.get_running_loop().run_in_executor(None, _join, threads)
            executor.shutdown(wait=True)
            log.info("stopped", **self.intake.stats.snapshot())

    def _listener(self, kind: ListenerKind, address: ListenAddress, executor: ThreadPoolExecutor) -> Listener:
        if kind == "syslog-udp":
            return UdpListener(address, intake=self.intake, executor=executor, limits=self.limits,
                               warnings=self.warnings)
        if kind in ("syslog-tcp", "syslog-tls", "relp", "relp-tls"):
            context = server_context(self.tls) if self.tls is not None and kind.endswith("-tls") else None
            return StreamListener("relp" if kind.startswith("relp") else "syslog", address, intake=self.intake,
                                  executor=executor, limits=self.limits, warnings=self.warnings, ssl_context=context,
                                  in_flight=self._in_flight)
        app = http_app(self.intake, executor=executor, limits=self.limits, id_tokens=self.id_tokens)
        return HttpListener(address, app, tls=self.tls if kind == "https" else None, grace=self.grace)

    def _background(self, stop: threading.Event) -> list[threading.Thread]:
        threads = []
        if self.drainer is not None:
            threads.append(threading.Thread(target=self.drainer.run, args=(stop,), name="drainer"))
        if self.registry is not None:
            threads.append(threading.Thread(target=self.registry.run, args=(stop,), name="registry"))
        for thread in threads:
            thread.start()
        return threads

    async def _log_stats(self) -> None:
        last: dict[str, int] = {}
        while True:
            await asyncio.sleep(_STATS_EVERY_SECONDS)
            now = self.intake.stats.snapshot()
            if now != last:
                log.info("intake counts", **now)
                last = now


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


class _EmbeddedServer(uvicorn.Server):
    """uvicorn on a loop it does not own: the intake service handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpListener:
    """The HTTP intake application served by uvicorn on one address (HTTPS when `tls` is given)."""

    def __init__(self, address: ListenAddress, app: Starlette, *, tls: TlsFiles | None, grace: float) -> None:
        self.address = address
        self.config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", server_header=False,
            timeout_graceful_shutdown=int(grace),
            ssl_certfile=str(tls.certificate) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
            ssl_ca_certs=str(tls.ca) if tls else None, ssl_cert_reqs=ssl.CERT_OPTIONAL if tls else ssl.CERT_NONE)
        self.server = _EmbeddedServer(self.config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> list[str]:
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.address.host, self.address.port))
        except OSError:
            sock.close()
            raise
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:  # uvicorn says when it serves; a failed start ends the task
            if self._task.done():
                self._task.result()
                raise OSError(f"the HTTP server on {self.address} stopped while starting")
            await asyncio.sleep(0.02)
        host, port = sock.getsockname()[:2]
        return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]

    async def close(self, *, grace: float) -> None:
        self.server.should_exit = True  # uvicorn stops accepting and lets requests in flight finish
        if self._task is not None:
            await asyncio.wait([self._task], timeout=grace + 5)
