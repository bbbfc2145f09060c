"""The case API under an analysts' load: queue reads, case reads and updates against a full PostgreSQL.

`python -m bench.api [--cases 100000] [--alerts 1000000] [--tenants 50] [--clients 100] [--rate 500]
[--duration 30] [--workers N] [--generators 2] [--fresh] [--drop] [--per-kind N]`. Not a test: it prints
figures. With `--per-kind N` it sends, instead of the load, N requests of each kind alone, 8 at once, and
prints the server's CPU per request of each (its cost without an overloaded machine's contention).

1. Uses the database `citysoc_bench` at 127.0.0.1:5432 when it holds that many cases, alerts and tenants
   (left by an earlier run), else creates it (dropped first), migrates it, and bulk-loads the tenants'
   cases and alerts with COPY: a third of the cases open (new, in progress, on hold), the rest resolved or
   closed, alerts spread evenly over the cases, every level and a day of event time per tenant. `--fresh`
   loads it again; `--drop` drops it at the end.
2. Starts `soc api` (uvicorn, the real application, `--workers` processes: its default unless given) on
   that database in its own process.
3. Starts the load generator in `--generators` other processes sharing `--clients` concurrent aiohttp
   clients (asyncio on uvloop; httpx's client took 2.5 ms of CPU per request here, aiohttp's 0.16), each
   an analyst sending one request every clients/rate seconds (together `--rate` requests per second), for
   `--duration` seconds after a 5 s warm-up. Mix: 60 % queue reads (`GET /cases?open=true&limit=50`,
   seven in ten as a city analyst, the rest as a member's responder over its own queue), 30 % case reads
   (`GET /cases/{id}`), 10 % updates (`GET /cases/{id}` for the ETag, then `PATCH` with `If-Match`,
   assigning or unassigning). A client whose answer came late sends its next request at once but
   does not catch up in a burst, so a server slower than the offered rate shows as achieved
   throughput below it; latency is measured from sending to the whole answer read.

Prints per kind: requests, throughput, p50, p99, errors (412s counted apart); the CPU seconds the server's
processes, PostgreSQL's backends and the load generators each used per request (on a shared machine the
generators' share is taken from the server: say it with the figures); and the target line: queue read
p99 < 100 ms at >= 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psycopg

from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.service import create_api_key
from case_api.cases.models import Case
from case_api.db import make_engine, make_session_factory, upgrade_database
from case_api.sla.clocks import DUE_COLUMNS, due_times
from case_api.sla.models import DEFAULT_CONTRACT
from case_api.tenants.models import Tenant
from citysoc.apiworker import default_workers

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
DATABASE = "citysoc_bench"
START = datetime(2026, 3, 2, tzinfo=UTC)
LEVELS = ("low", "medium", "medium", "high", "high", "high", "critical")
OPEN_STATUSES = ("new", "new", "in_progress", "on_hold")
FINISHED = (("resolved", "benign"), ("closed", "true_positive"), ("closed", "false_positive"), ("closed", "benign"))
WARM_UP = 5.0
QUEUE, CASE, UPDATE = "queue read", "case read", "update"


def tenant_name(number: int) -> str:
    return f"member-{number:03d}"


# --- database --------------------------------------------------------------------------------------


def database_url() -> str:
    with psycopg.connect(ADMIN_DSN) as admin:
        info = admin.info
        return f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{DATABASE}"


def database_exists() -> bool:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is not None


def loaded_shape(*, cases: int, alerts: int, tenants: int) -> bool:
    """Whether `citysoc_bench` exists and holds exactly that many cases, alerts and tenants."""
    if not database_exists():
        return False
    try:
        with psycopg.connect(libpq_dsn()) as conn:
            found = conn.execute(
                "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM alerts), (SELECT count(*) FROM tenants)"
            ).fetchone()
    except psycopg.Error:  # half-made: no tables yet
        return False
    return found == (cases, alerts, tenants)


def drop_database() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def create_database(url: str, *, tenants: int) -> None:
    drop_database()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    engine = make_engine(url)
    upgrade_database(engine)
    with make_session_factory(engine)() as session:
        session.add_all([Tenant(id=tenant_name(n), name=f"Member {n}") for n in range(tenants)])
        session.commit()
    engine.dispose()


def libpq_dsn() -> str:
    return ADMIN_DSN.replace("dbname=postgres", f"dbname={DATABASE}")


def load(*, cases: int, alerts: int, tenants: int, seed: int = 7) -> dict[str, float]:
    """COPY the cases and alerts in; return seconds per step."""
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    case_tenants = [tenant_name(n % tenants) for n in range(cases)]
    with psycopg.connect(libpq_dsn()) as conn:
        begin = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(
            "COPY cases (id, tenant_id, title, status, severity, group_key, alert_count, first_seen, last_seen,"
            " created_at, updated_at, assignee, resolution, techniques, closed_at, version, acknowledged_at,"
            f" triaged_at, resolved_at, {', '.join(DUE_COLUMNS)}) FROM STDIN"
        ) as copy:
            for number in range(cases):
                case_id = number + 1
                first = START + timedelta(seconds=rng.randrange(86_400))
                last = first + timedelta(minutes=rng.randrange(240))
                if rng.random() < 1 / 3:
                    status, resolution, closed = rng.choice(OPEN_STATUSES), None, None
                else:
                    (status, resolution), closed = rng.choice(FINISHED), last + timedelta(hours=2)
                alert_count = alerts // cases + (1 if number < alerts % cases else 0)
                severity = rng.choice(LEVELS)
                # The SLA clocks' stops and stored due times, as the API keeps them (default contract).
                stops = {"acknowledged_at": None if status == "new" else first + timedelta(minutes=10),
                         "triaged_at": None if status in ("new", "in_progress") else first + timedelta(minutes=30),
                         "resolved_at": closed}
                due = due_times(Case(severity=severity, created_at=first, sla_pauses=None, sla_paused_since=None,
                                     **stops), DEFAULT_CONTRACT)
                copy.write_row((
                    case_id, case_tenants[number], f"Suspicious activity {case_id}", status, severity,
                    f"user.name=user{case_id}", alert_count, first, last, first, last, None, resolution,
                    '["T1110"]', closed, 1, *stops.values(), *(due[column] for column in DUE_COLUMNS),
                ))
        conn.execute("SELECT setval(pg_get_serial_sequence('cases', 'id'), %s)", (cases,))
        conn.commit()
        timings["cases"] = time.perf_counter() - begin
        begin = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(
            "COPY alerts (tenant_id, id, case_id, rule_id, rule_title, rule_level, rule_tags, timestamp, last_seen,"
            " event_ids, entities, group_key, document, received_at) FROM STDIN"
        ) as copy:
            for number in range(alerts):
                case_id = number % cases + 1
                tenant = case_tenants[case_id - 1]
                at = START + timedelta(seconds=rng.randrange(86_400))
                user = f"user{case_id}"
                document = orjson.dumps({
                    "id": f"a{number}", "@timestamp": at.isoformat(), "organization": {"id": tenant},
                    "rule": {"id": "r1", "title": "Brute force", "level": "high"},
                }).decode()
                copy.write_row((
                    tenant, f"a{number}", case_id, "r1", "Brute force", rng.choice(LEVELS), '["attack.t1110"]', at,
                    at, f'["e{number}"]', f'{{"user.name": ["{user}"]}}', f"user.name={user}", document, at,
                ))
        conn.commit()
        timings["alerts"] = time.perf_counter() - begin
        begin = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE cases")
        conn.execute("VACUUM ANALYZE alerts")
        timings["analyze"] = time.perf_counter() - begin
    return timings


def issue_keys(url: str, *, tenants: int) -> dict[str, str]:
    """An analyst's key and one responder's key per member, straight in the database."""
    engine = make_engine(url)
    keys: dict[str, str] = {}
    with make_session_factory(engine)() as session:
        _, keys["analyst"] = create_api_key(session=session, key_in=ApiKeyIn(name="bench-analyst",
                                                                             role=Role.SOC_ANALYST))
        for n in range(tenants):
            tenant = tenant_name(n)
            _, keys[tenant] = create_api_key(
                session=session, key_in=ApiKeyIn(name=f"bench-{tenant}", role=Role.TENANT_RESPONDER, tenant_id=tenant)
            )
    engine.dispose()
    return keys


# --- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def soc_api(url: str, home: Path, workers: int | None = None) -> Iterator[tuple[str, int]]:
    """`soc api` on ``url`` in its own process; yields its base URL and process id once it answers."""
    port = free_port()
    env = {**os.environ, "SOC_HOME": str(home), "SOC_DATABASE_URL": url}
    # Its log (an access line per request) goes to a file: a pipe nobody drains would stall the server.
    log_path = home / "soc-api.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "citysoc.cli", "api", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"soc api exited ({server.returncode}): {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("soc api did not answer within 60 s")
            time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# --- CPU accounting -------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's uvicorn workers)."""
    tree = [pid]
    for child in _children(pid):
        tree += process_tree(child)
    return tree


def _worker_count(pid: int) -> int:
    """uvicorn's worker processes under ``pid`` (spawned), or 1: the server process itself serves."""
    workers = [child for child in _children(pid)
               if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text(errors="replace")]
    return len(workers) or 1


def server_cpu(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


class PostgresCpu:
    """CPU seconds of the PostgreSQL backends serving `citysoc_bench` (server on this machine, Linux), sampled
    every half second in a thread so that backends closed before the end (the pool's overflow) count too."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}
        self._start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, admin: psycopg.Connection[Any]) -> None:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DATABASE,)).fetchall()
        for (pid,) in rows:
            self._seen[pid] = max(self._seen.get(pid, 0.0), _cpu_seconds(pid))

    def _run(self) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            self._sample(admin)
            self._start = dict(self._seen)
            while not self._stop.wait(0.5):
                self._sample(admin)
            self._sample(admin)

    def __enter__(self) -> PostgresCpu:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._seen.items())


# --- the load generator (its own processes) --------------------------------------------------------


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {QUEUE: [], CASE: [], UPDATE: []})
    errors: dict[str, int] = field(default_factory=lambda: {QUEUE: 0, CASE: 0, UPDATE: 0})
    conflicts: int = 0
    first_error: str = ""
    sent: int = 0  # every request, the warm-up's included (what the CPU figures are divided by)
    cpu: float = 0.0  # CPU seconds of this generator while it sent them


async def _client(number: int, http: aiohttp.ClientSession, keys: dict[str, str], plan: dict[str, Any],
                  samples: Samples, start: float) -> None:
    """One analyst: a request every clients/rate seconds; one that falls behind sends at once, never a burst."""
    rng = random.Random(number)
    interval = plan["clients"] / plan["rate"]
    due = start + rng.random() * interval
    stop = start + WARM_UP + plan["duration"]
    tenants = [key for key in keys if key != "analyst"]
    analyst = {"Authorization": f"Bearer {keys['analyst']}"}
    while (now := time.perf_counter()) < stop:
        if due > now:
            await asyncio.sleep(due - now)
        sent = time.perf_counter()
        measured = sent >= start + WARM_UP
        kind = rng.choices((QUEUE, CASE, UPDATE), weights=(6, 3, 1))[0]
        samples.sent += 1 + (kind == UPDATE)  # an update is a read and a PATCH
        try:
            ok, detail = await _request(kind, http, rng, plan, analyst, tenants, keys, samples, measured)
        except (aiohttp.ClientError, TimeoutError) as exc:  # a dropped or refused connection is an error
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if measured:
            samples.latencies[kind].append(time.perf_counter() - sent)
            if not ok:
                samples.errors[kind] += 1
                samples.first_error = samples.first_error or f"{kind}: {detail}"
        due = max(due + interval, time.perf_counter())


async def _request(kind: str, http: aiohttp.ClientSession, rng: random.Random, plan: dict[str, Any],
                   analyst: dict[str, str], tenants: list[str], keys: dict[str, str], samples: Samples,
                   measured: bool) -> tuple[bool, str]:
    """One request of ``kind``: whether it succeeded, and what came back if not."""
    if kind == QUEUE:
        member = rng.random() >= 0.7
        headers = {"Authorization": f"Bearer {keys[rng.choice(tenants)]}"} if member else analyst
        async with http.get("/api/v1/cases", params={"open": "true", "limit": 50}, headers=headers) as response:
            body = await response.read()
    elif kind == CASE:
        async with http.get(f"/api/v1/cases/{rng.randrange(1, plan['cases'] + 1)}", headers=analyst) as response:
            body = await response.read()
    else:
        case_id = rng.randrange(1, plan["cases"] + 1)
        async with http.get(f"/api/v1/cases/{case_id}", headers=analyst,
                            params={"alerts_limit": 1, "events_limit": 1}) as read:
            body = await read.read()
            if read.status != 200:
                return False, f"{read.status} {body[:200]!r}"
            etag = read.headers.get("ETag", "")
        assignee = None if orjson.loads(body).get("assignee") else "bench-analyst"
        async with http.patch(f"/api/v1/cases/{case_id}", data=orjson.dumps({"assignee": assignee}),
                              headers={**analyst, "If-Match": etag, "Content-Type": "application/json"}) as response:
            body = await response.read()
        if response.status == 412:
            samples.conflicts += measured
            return True, ""
    return response.status == 200, f"{response.status} {body[:200]!r}"


async def _generate(base: str, keys: dict[str, str], plan: dict[str, Any], numbers: range,
                    start: float) -> Samples:
    samples = Samples()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples.cpu = -(usage.ru_utime + usage.ru_stime)  # the load's CPU only, not the process's imports
    connector = aiohttp.TCPConnector(limit=len(numbers))
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.sleep(max(0.0, start - time.time()))
        begin = time.perf_counter()
        await asyncio.gather(*(_client(n, http, keys, plan, samples, begin) for n in numbers))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples.cpu += usage.ru_utime + usage.ru_stime
    return samples


def load_generator(base: str, keys: dict[str, str], plan: dict[str, Any], numbers: range, start: float,
                   results: Connection) -> None:
    """Entry point of one load generator process (clients ``numbers``, all starting at wall time ``start``):
    sends its samples and the CPU seconds it used back through ``results``."""
    try:
        import uvloop

        samples = uvloop.run(_generate(base, keys, plan, numbers, start))
    except ImportError:
        samples = asyncio.run(_generate(base, keys, plan, numbers, start))
    results.send_bytes(orjson.dumps(samples.__dict__))
    results.close()


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The generators' samples as one."""
    merged: dict[str, Any] = {"latencies": {QUEUE: [], CASE: [], UPDATE: []}, "errors": {QUEUE: 0, CASE: 0, UPDATE: 0},
                              "conflicts": 0, "first_error": "", "cpu": 0.0, "sent": 0}
    for part in parts:
        for kind in merged["latencies"]:
            merged["latencies"][kind] += part["latencies"][kind]
            merged["errors"][kind] += part["errors"][kind]
        merged["conflicts"] += part["conflicts"]
        merged["first_error"] = merged["first_error"] or part["first_error"]
        merged["cpu"] += part["cpu"]
        merged["sent"] += part["sent"]
    return merged


def run_load(base: str, keys: dict[str, str], plan: dict[str, Any], generators: int) -> dict[str, Any]:
    """The clients split over ``generators`` processes, started together; their merged samples."""
    spawn = multiprocessing.get_context("spawn")
    start = time.time() + 2.0  # every process imported and connected before the first request
    clients = plan["clients"]
    processes, receivers = [], []
    for index in range(generators):
        numbers = range(index * clients // generators, (index + 1) * clients // generators)
        receive, send = spawn.Pipe(duplex=False)
        process = spawn.Process(target=load_generator, args=(base, keys, plan, numbers, start, send))
        process.start()
        send.close()
        processes.append(process)
        receivers.append(receive)
    parts = [orjson.loads(receive.recv_bytes()) for receive in receivers]
    for process in processes:
        process.join()
    return merge(parts)


async def _one_kind(base: str, keys: dict[str, str], plan: dict[str, Any], kind: str, requests: int,
                    concurrency: int) -> None:
    """``requests`` requests of ``kind`` (an update is two), ``concurrency`` at once, as the clients send them."""
    tenants = [key for key in keys if key != "analyst"]
    analyst = {"Authorization": f"Bearer {keys['analyst']}"}
    samples = Samples()
    async with aiohttp.ClientSession(base) as http:
        async def sender(number: int) -> None:
            rng = random.Random(number)
            for _ in range(requests // concurrency):
                ok, detail = await _request(kind, http, rng, plan, analyst, tenants, keys, samples, True)
                if not ok:
                    raise SystemExit(f"{kind}: {detail}")

        await asyncio.gather(*(sender(n) for n in range(concurrency)))


def per_kind(base: str, keys: dict[str, str], plan: dict[str, Any], servers: list[int], requests: int,
             concurrency: int = 8) -> None:
    """Server CPU per HTTP request of each kind alone, at a concurrency the server keeps up with (its cost
    without the contention of an overloaded machine); after one round of queue reads to warm its caches."""
    asyncio.run(_one_kind(base, keys, plan, QUEUE, requests, concurrency))
    figures = []
    for kind in (QUEUE, CASE, UPDATE):
        before, started = server_cpu(servers), time.perf_counter()
        asyncio.run(_one_kind(base, keys, plan, kind, requests, concurrency))
        sent = requests // concurrency * concurrency * (2 if kind == UPDATE else 1)
        figures.append(f"{kind} {(server_cpu(servers) - before) / sent * 1e3:.2f} ms "
                       f"({sent / (time.perf_counter() - started):.0f} requests/s)")
    print(f"server CPU per HTTP request, {requests} of each kind {concurrency} at once (an update is a read and a "
          "PATCH): " + "; ".join(figures))


# --- the console's queue page ----------------------------------------------------------------------

#: The console's open queue (case_api/console/queue_views.py), 50 cases a page.
CONSOLE_QUEUE = "/console/queue"
#: Its target: rendered within this much server time with 100,000 cases in PostgreSQL.
CONSOLE_TARGET_MS = 300.0


def _server_total_ms(header: str) -> float:
    """The ``total`` duration of a ``Server-Timing`` header (milliseconds), NaN when absent."""
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name == "total":
            for param in params.split(";"):
                key, _, value = param.partition("=")
                if key.strip() == "dur":
                    return float(value)
    return float("nan")


def console_queue(base: str, secret: str, requests: int) -> dict[str, list[float]] | None:
    """Sign in to the console with ``secret`` (its form, CSRF token and session cookie, as a browser does) and
    read its queue page ``requests`` times, one at a time: the server time (``Server-Timing: total``) and the
    time to the whole page, in seconds; ``None`` when this build serves no console."""
    with httpx.Client(base_url=base, timeout=60) as http:
        form = http.get("/console/login")
        if form.status_code == 404:
            return None
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or token is None:
            raise SystemExit(f"console sign-in form: {form.status_code} {form.text[:200]}")
        signed = http.post("/console/login", data={"api_key": secret, "csrf_token": token.group(1),
                                                   "next": CONSOLE_QUEUE})
        if signed.status_code != 303:
            raise SystemExit(f"console sign-in: {signed.status_code} {signed.text[:200]}")
        times: dict[str, list[float]] = {"server": [], "page": []}
        for _ in range(requests):
            begin = time.perf_counter()
            page = http.get(CONSOLE_QUEUE)
            times["page"].append(time.perf_counter() - begin)
            if page.status_code != 200:
                raise SystemExit(f"console queue: {page.status_code} {page.text[:200]}")
            times["server"].append(_server_total_ms(page.headers.get("server-timing", "")) / 1e3)
    return times


def report_console(times: dict[str, list[float]] | None, requests: int) -> None:
    if times is None:
        print("console queue page: not served by this build (no /console)")
        return
    server, page = times["server"], times["page"]
    p99 = percentile(server, 0.99) * 1e3
    print(f"console queue page ({CONSOLE_QUEUE} as the city analyst, {requests} requests one at a time after the "
          f"load): server time p50 {percentile(server, 0.5) * 1e3:.1f} ms, p99 {p99:.1f} ms (Server-Timing total); "
          f"whole page p50 {percentile(page, 0.5) * 1e3:.1f} ms, p99 {percentile(page, 0.99) * 1e3:.1f} ms")
    print(f"target: console queue page within {CONSOLE_TARGET_MS:.0f} ms server time: "
          f"{'MET' if p99 < CONSOLE_TARGET_MS else 'NOT MET'} (p99 {p99:.1f} ms)")


# --- report ----------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def report(samples: dict[str, Any], duration: float, rate: float, clients: int,
           cpu: dict[str, float] | None = None) -> bool:
    latencies: dict[str, list[float]] = samples["latencies"]
    total = sum(len(values) for values in latencies.values())
    print(f"offered {rate:.0f} requests/s from {clients} clients for {duration:.0f} s; achieved "
          f"{total / duration:.0f} requests/s")
    print(f"{'kind':<12} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind, values in latencies.items():
        print(f"{kind:<12} {len(values):>9} {len(values) / duration:>7.0f} {percentile(values, 0.5) * 1e3:>8.1f} "
              f"{percentile(values, 0.99) * 1e3:>8.1f} {samples['errors'][kind]:>7}")
    print(f"updates refused with 412 (changed since read): {samples['conflicts']}")
    if cpu:
        # Over the whole run: every HTTP request sent, the warm-up's included (an update is two).
        sent = max(1, samples["sent"])
        print(f"CPU per HTTP request (ms, {sent:,} sent): "
              + ", ".join(f"{name} {seconds / sent * 1e3:.2f}" for name, seconds in cpu.items())
              + "; CPU seconds over the run: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
    if samples["first_error"]:
        print(f"first error: {samples['first_error']}")
    queue_p99 = percentile(latencies[QUEUE], 0.99) * 1e3
    throughput = total / duration
    met = queue_p99 < 100 and throughput >= 500 and not any(samples["errors"].values())
    print(f"target: queue read p99 < 100 ms at >= 500 requests/s: {'MET' if met else 'NOT MET'} "
          f"(queue read p99 {queue_p99:.1f} ms at {throughput:.0f} requests/s)")
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500, help="requests per second offered, all clients together")
    parser.add_argument("--duration", type=float, default=30, help="seconds measured, after a 5 s warm-up")
    parser.add_argument("--workers", type=int, default=None, help="soc api --workers (default: soc api's default)")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes sharing the clients")
    parser.add_argument("--console-requests", type=int, default=100,
                        help="reads of the console's queue page after the load (0: none)")
    parser.add_argument("--fresh", action="store_true", help=f"load {DATABASE} again even if it holds that shape")
    parser.add_argument("--drop", action="store_true", help=f"drop {DATABASE} at the end")
    parser.add_argument("--per-kind", type=int, default=0, metavar="N",
                        help="instead of the load: N requests of each kind, 8 at once, and the server CPU of each")
    args = parser.parse_args(argv)

    url = database_url()
    if not args.fresh and loaded_shape(cases=args.cases, alerts=args.alerts, tenants=args.tenants):
        print(f"reusing database {DATABASE} ({args.cases:,} cases, {args.alerts:,} alerts, {args.tenants} tenants)")
        upgrade_database(url)  # a schema newer than the load's
    else:
        begin = time.perf_counter()
        create_database(url, tenants=args.tenants)
        timings = load(cases=args.cases, alerts=args.alerts, tenants=args.tenants)
        print(f"loaded {args.cases:,} cases and {args.alerts:,} alerts over {args.tenants} tenants in "
              f"{time.perf_counter() - begin:.1f} s ("
              + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()) + ")")
    keys = issue_keys(url, tenants=args.tenants)
    plan = {"clients": args.clients, "rate": args.rate, "duration": args.duration, "cases": args.cases}
    try:
        with tempfile.TemporaryDirectory(prefix="soc-bench-api-") as home, \
                soc_api(url, Path(home), args.workers) as (base, pid):
            servers = process_tree(pid)
            if args.per_kind:
                per_kind(base, keys, plan, servers, args.per_kind)
                return
            before = server_cpu(servers)
            with PostgresCpu() as postgres:
                samples = run_load(base, keys, plan, max(1, min(args.generators, args.clients)))
            cpu = {"server": server_cpu(servers) - before, "postgres": postgres.seconds,
                   "load generators": samples["cpu"]}
            workers = f"--workers {args.workers}" if args.workers else f"its default: {default_workers(url)}"
            print(f"soc api: {_worker_count(pid)} server process(es) answering ({workers});"
                  f" {args.generators} load generator process(es)")
            console = None
            if args.console_requests:
                console = console_queue(base, keys["analyst"], args.console_requests)
        report(samples, args.duration, args.rate, args.clients, cpu)
        if args.console_requests:
            report_console(console, args.console_requests)
        print(f"load average at the end (1, 5, 15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
              f"{os.cpu_count()} cores")
    finally:
        if args.drop:
            drop_database()


if __name__ == "__main__":
    main()
