"""What the intake tests share: the spool, the service in a thread or `soc collect` in a process, sources
registered for real in the case API, and where records landed (the spool, or the store once drained)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.settings import Settings
from citysoc.store import ParquetEventStore
from citysoc.wiring import case_client
from collectors.attribution import SourceAccess, SourceRef, SourceRegistry, networks, token_digest
from collectors.drain import Drainer
from collectors.google_id import GoogleIdTokens
from collectors.intake import Intake, SpoolFullError
from collectors.listeners.config import Limits, ListenAddress, ListenerPlan
from collectors.listeners.service import IntakeService
from collectors.listeners.tls import ClientCertificate, ensure_tls_files, issue_client_certificate
from collectors.records import RawRecord
from collectors.spool import Spool

COLLECT = [sys.executable, "-m", "citysoc.cli"]

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 90.0  # seconds; generous: the machine is shared, and only a failure ever waits this long


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = DEADLINE) -> Any:
    """Poll `condition` until it is truthy; fail with `what` at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


# --- sources, registered the way an operator does ------------------------------------------------------

@dataclass(frozen=True)
class SourceSpec:
    tenant: str
    name: str
    parser: str  # where its records go: syslog, aws.cloudtrail
    transports: tuple[str, ...]  # one source of the matching kind each (syslog-udp, ..., http)
    networks: tuple[str, ...] = ()
    certificate_sha256: str | None = None
    cloud_accounts: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ("system.syslog", "system.auth")


KIND_OF_TRANSPORT = {"udp": "syslog-udp", "tcp": "syslog-tcp", "tls": "syslog-tls", "relp": "syslog-relp",
                     "http": "http"}


def _kinds(transports: Iterable[str]) -> list[str]:
    """The source kinds that cover `transports`: syslog-tls and syslog-relp each take both TLS and RELP."""
    kinds = [KIND_OF_TRANSPORT[transport] for transport in transports]
    if "syslog-tls" in kinds and "syslog-relp" in kinds:
        kinds.remove("syslog-relp")
    return kinds


def register(home: Path, specs: Iterable[SourceSpec]) -> dict[str, str]:
    """Tenants and sources in the case API under `home`, as an operator adds them: one source of the kind of
    each transport. Returns the bearer tokens the API issued, by `tenant/name` of the http sources."""
    settings = Settings(home=home)
    tokens: dict[str, str] = {}
    with case_client(settings, role="admin") as client:
        known = {tenant["id"] for tenant in client.list_tenants()}
        for spec in specs:
            if spec.tenant not in known:
                client.add_tenant(spec.tenant, spec.tenant.replace("-", " ").title())
                known.add(spec.tenant)
            kinds = _kinds(spec.transports)
            for kind in kinds:
                name = spec.name if len(kinds) == 1 else f"{spec.name} ({kind})"
                pinned = spec.certificate_sha256 if kind in ("syslog-tls", "syslog-relp") else None
                added = client.add_source(
                    tenant_id=spec.tenant, kind=kind, name=name, datasets=list(spec.datasets),
                    parser=spec.parser, networks=list(spec.networks) if kind != "http" else [],
                    cloud_accounts=list(spec.cloud_accounts), certificate_sha256=pinned)
                if "token" in added:
                    tokens[f"{spec.tenant}/{spec.name}"] = added["token"]
    return tokens


# --- where records landed --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Landed:
    tenant: str
    source: str  # the parser (spool) or the dataset (store)
    text: str


def landed(home: Path, spool: Any = None) -> list[Landed]:
    """Records in `spool` when given; else in the spool under `home` when there is no drainer to move them,
    or events in the store once the drainer runs."""
    if spool is not None or Drainer is None:
        spool = spool or Spool(home / "spool")
        return [Landed(batch.tenant, batch.source, record.payload.decode("utf-8", "replace"))
                for batch in spool.pending() for record in batch.records]
    store = ParquetEventStore(Settings(home=home).events_dir)
    found = []
    for dataset in store.datasets():
        lake = store.arrow_dataset(dataset)
        if lake is not None:
            # by position: a flat schema names the columns "organization.id", a nested one "id" and "original"
            table = lake.to_table(columns=["organization.id", "event.original"])
            found += [Landed(tenant, dataset, original or "") for tenant, original
                      in zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)]
    return found


def landed_with(home: Path, marker: str, spool: Any = None) -> list[Landed]:
    return [item for item in landed(home, spool) if marker in item.text]


def dead_letters(home: Path) -> list[dict[str, str]]:
    return list(DeadLetterStore(Settings(home=home).deadletter_dir).list(limit=10_000))


# --- the service in this process, with sources of three tenants ---------------------------------------

class ServiceThread:
    """An `IntakeService` on its own loop in a thread; `stop` shuts it down as SIGTERM would."""

    def __init__(self, service: IntakeService) -> None:
        self.service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="intake-service")

    def _main(self) -> None:
        async def run() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await self.service.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as error:
            self._error = error
            self.service.ready.set()

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        assert self.service.ready.wait(DEADLINE), "the intake service did not start"
        if self._error is not None:
            raise self._error
        return self

    def address(self, kind: str) -> tuple[str, int]:
        host, _, port = self.service.bound[kind][0].rpartition(":")  # type: ignore[index]
        return host.strip("[]"), int(port)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the intake service did not stop"

    def __exit__(self, *exc: object) -> None:
        self.stop()


COUNCIL = SourceRef(1, "riverside-council", "edge syslog", "syslog", "syslog")
SCHOOL_TLS = SourceRef(2, "harbour-school", "firewall", "syslog", "syslog")
HOSPITAL = SourceRef(3, "northgate-hospital", "cloudtrail push", "aws.cloudtrail", "aws.cloudtrail", ("111122223333",))
SCHOOL_HTTP = SourceRef(4, "harbour-school", "json push", "http", "")  # no parser of its own: ?source= says
HOSPITAL_TOKEN, SCHOOL_TOKEN = "hospital-token-5f1d", "school-token-93ac"
OUTSIDE = "127.0.0.2"  # a loopback address no source's network holds: the stranger
KINDS = ("syslog-udp", "syslog-tcp", "syslog-tls", "relp", "http")


@dataclass
class Running:
    thread: ServiceThread
    spool: Any
    dead_letters: DeadLetterStore
    client: ClientCertificate
    tls_dir: Path

    @property
    def intake(self) -> Intake:
        return self.thread.service.intake

    def address(self, kind: str) -> tuple[str, int]:
        return self.thread.address(kind)

    def records(self, marker: str) -> list[tuple[str, str, RawRecord]]:
        return [(batch.tenant, batch.source, record) for batch in self.spool.pending() for record in batch.records
                if marker.encode() in record.payload]

    def count(self, transport: str, outcome: str) -> int:
        return self.intake.stats.get(transport, outcome)


@contextmanager
def running(tmp_path: Path, *, limits: Limits | None = None, max_spool_bytes: int = 64 * 1024**2,
            kinds: tuple[str, ...] = KINDS, gate: threading.Event | None = None,
            more_sources: tuple[SourceAccess, ...] = (), id_tokens: GoogleIdTokens | None = None) -> Iterator[Running]:
    """The service with the sources above (and `more_sources`); with `gate`, each append waits for it (see
    `GatedSpool`); `id_tokens` checks push ID tokens (by default against Google, unreachable here)."""
    tls_dir = tmp_path / "tls"
    tls = ensure_tls_files(tls_dir, server_names=["localhost", "127.0.0.1"])
    client = issue_client_certificate(tls_dir, common_name="harbour-school firewall")
    registry = SourceRegistry.of([
        SourceAccess(COUNCIL, frozenset({"udp", "tcp", "relp"}), networks(["127.0.0.1"])),
        SourceAccess(SCHOOL_TLS, frozenset({"tls", "relp"}), certificate_sha256=client.fingerprint),
        SourceAccess(HOSPITAL, frozenset({"http"}), token_sha256=token_digest(HOSPITAL_TOKEN)),
        SourceAccess(SCHOOL_HTTP, frozenset({"http"}), token_sha256=token_digest(SCHOOL_TOKEN)),
        *more_sources,
    ])
    spool = Spool(tmp_path / "spool", max_bytes=max_spool_bytes, segment_bytes=min(max_spool_bytes, 1024**2))
    dead_letters = DeadLetterStore(tmp_path / "deadletter")
    intake = Intake(GatedSpool(spool, gate) if gate else spool, lambda: registry, dead_letters=dead_letters)
    plan = ListenerPlan({kind: [ListenAddress("127.0.0.1", 0)] for kind in kinds})  # type: ignore[misc]
    service = IntakeService(intake, plan, limits=limits, tls=tls, grace=DEADLINE, id_tokens=id_tokens)
    with ServiceThread(service) as thread:
        yield Running(thread, spool, dead_letters, client, tls_dir)


class GatedSpool:
    """The real spool, whose appends wait until `gate` is set: a test decides when a batch becomes durable,
    so "shutdown while a batch is being written" happens at a known point, not by luck of timing."""

    def __init__(self, spool: Any, gate: threading.Event) -> None:
        self.spool = spool
        self.gate = gate
        self.entered = threading.Event()

    def append(self, *, tenant: str, source: str, records: Any, source_id: int | None = None) -> None:
        self.entered.set()
        assert self.gate.wait(DEADLINE), "the test never opened the gate"
        self.spool.append(tenant=tenant, source=source, records=records, source_id=source_id)


def fill_until_full(spool: Any) -> None:
    """Append until not even a one-byte record fits."""
    for size in (4000, 400, 40, 1):
        filler = [RawRecord(b"f" * size, "filler", datetime.now(UTC))]
        with pytest.raises(SpoolFullError):
            for _ in range(10_000):
                spool.append(tenant="riverside-council", source="syslog", records=filler)


def free(spool: Any) -> None:
    for batch in list(spool.pending()):
        spool.commit(batch.position)


# --- `soc collect` as its own process ------------------------------------------------------------------

@dataclass
class Collector:
    """`soc collect ARGS` with JSON logs; its log lines are parsed as they come."""

    home: Path
    args: list[str]
    logs: list[dict[str, Any]] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Collector:
        env = {**os.environ, "SOC_HOME": str(self.home), "SOC_LOG_FORMAT": "json", "SOC_LOG_LEVEL": "INFO",
               "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen([*COLLECT, "collect", *self.args], cwd=REPO, env=env, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_log("intake ready")
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": "(not JSON)", "line": line.rstrip()}
            with self._lock:
                self.logs.append(entry)
                self._lock.notify_all()
        with self._lock:
            self.logs.append({"event": "(exited)"})
            self._lock.notify_all()

    def wait_log(self, event: str, *, timeout: float = DEADLINE, **fields: Any) -> dict[str, Any]:
        """The first log entry `event` with `fields`; fails if the process exits or the deadline passes."""
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                for entry in self.logs:
                    if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                        return entry
                if any(entry.get("event") == "(exited)" for entry in self.logs):
                    pytest.fail(f"soc collect exited before logging {event!r}:\n{self.transcript()}")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"soc collect did not log {event!r} {fields} in {timeout:.0f}s:\n{self.transcript()}")
                self._lock.wait(timeout=remaining)

    def address(self, kind: str) -> tuple[str, int]:
        entry = self.wait_log("listening", listener=kind)
        host, _, port = entry["address"].rpartition(":")
        return host.strip("[]"), int(port)

    def transcript(self) -> str:
        return "\n".join(json.dumps(entry) for entry in self.logs[-60:])

    def stop(self) -> int:
        """SIGTERM, then the exit code (after at most the deadline; killed past it)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"soc collect did not stop on SIGTERM:\n{self.transcript()}")
