"""The case API under an analysts' load: queue reads, case reads and updates against a full PostgreSQL.

`python -m bench.api [--cases 100000] [--alerts 1000000] [--tenants 50] [--clients 100] [--rate 500]
[--duration 30] [--keep] [--reuse]`. Not a test: it prints figures.

1. Creates the database `citysoc_bench` at 127.0.0.1:5432 (dropped first, and at the end unless `--keep`;
   `--reuse` keeps a loaded one), migrates it, and bulk-loads the tenants' cases and alerts with COPY:
   a third of the cases open (new, in progress, on hold), the rest resolved or closed, alerts spread
   evenly over the cases, every level and a day of event time per tenant.
2. Starts `soc api` (uvicorn, the real application) on that database in its own process.
3. Starts the load generator in another process: `--clients` concurrent httpx clients (asyncio), each
   an analyst sending one request every clients/rate seconds (together `--rate` requests per second),
   for `--duration` seconds after a 5 s warm-up. Mix: 60 % queue reads (`GET /cases?open=true&limit=50`, seven in ten
   as a city analyst, the rest as a member's responder over its own queue), 30 % case reads
   (`GET /cases/{id}`), 10 % updates (`GET /cases/{id}` for the ETag, then `PATCH` with `If-Match`,
   assigning or unassigning). A client whose answer came late sends its next request at once but
   does not catch up in a burst, so a server slower than the offered rate shows as achieved
   throughput below it; latency is measured from sending to the whole answer read.

Prints per kind: requests, throughput, p50, p99, errors (412s counted apart), and the target line:
queue read p99 < 100 ms at >= 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.service import create_api_key
from case_api.db import make_engine, make_session_factory, upgrade_database
from case_api.tenants.models import Tenant

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
            " created_at, updated_at, assignee, resolution, techniques, closed_at, version) FROM STDIN"
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
                copy.write_row((
                    case_id, case_tenants[number], f"Suspicious activity {case_id}", status, rng.choice(LEVELS),
                    f"user.name=user{case_id}", alert_count, first, last, first, last, None, resolution,
                    '["T1110"]', closed, 1,
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
def soc_api(url: str, home: Path) -> Iterator[str]:
    """`soc api` on ``url`` in its own process; yields its base URL once it answers."""
    port = free_port()
    env = {**os.environ, "SOC_HOME": str(home), "SOC_DATABASE_URL": url}
    # Its log (an access line per request) goes to a file: a pipe nobody drains would stall the server.
    log_path = home / "soc-api.log"
    log = log_path.open("wb")
    server = subprocess.Popen([sys.executable, "-m", "citysoc.cli", "api", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
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
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# --- the load generator (its own process) ----------------------------------------------------------


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {QUEUE: [], CASE: [], UPDATE: []})
    errors: dict[str, int] = field(default_factory=lambda: {QUEUE: 0, CASE: 0, UPDATE: 0})
    conflicts: int = 0
    first_error: str = ""


async def _client(number: int, http: httpx.AsyncClient, keys: dict[str, str], plan: dict[str, Any],
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
        try:
            ok, detail = await _request(kind, http, rng, plan, analyst, tenants, keys, samples, measured)
        except httpx.TransportError as exc:  # a connection the server dropped or refused counts as an error
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if measured:
            samples.latencies[kind].append(time.perf_counter() - sent)
            if not ok:
                samples.errors[kind] += 1
                samples.first_error = samples.first_error or f"{kind}: {detail}"
        due = max(due + interval, time.perf_counter())


async def _request(kind: str, http: httpx.AsyncClient, rng: random.Random, plan: dict[str, Any],
                   analyst: dict[str, str], tenants: list[str], keys: dict[str, str], samples: Samples,
                   measured: bool) -> tuple[bool, str]:
    """One request of ``kind``: whether it succeeded, and what came back if not."""
    if kind == QUEUE:
        member = rng.random() >= 0.7
        headers = {"Authorization": f"Bearer {keys[rng.choice(tenants)]}"} if member else analyst
        response = await http.get("/api/v1/cases", params={"open": "true", "limit": 50}, headers=headers)
    elif kind == CASE:
        response = await http.get(f"/api/v1/cases/{rng.randrange(1, plan['cases'] + 1)}", headers=analyst)
    else:
        case_id = rng.randrange(1, plan["cases"] + 1)
        read = await http.get(f"/api/v1/cases/{case_id}", headers=analyst,
                              params={"alerts_limit": 1, "events_limit": 1})
        if read.status_code != 200:
            return False, f"{read.status_code} {read.text[:200]}"
        assignee = None if read.json().get("assignee") else "bench-analyst"
        response = await http.patch(f"/api/v1/cases/{case_id}", json={"assignee": assignee},
                                    headers={**analyst, "If-Match": read.headers.get("ETag", "")})
        if response.status_code == 412:
            samples.conflicts += measured
            return True, ""
    return response.status_code == 200, f"{response.status_code} {response.text[:200]}"


async def _generate(base: str, keys: dict[str, str], plan: dict[str, Any]) -> Samples:
    samples = Samples()
    limits = httpx.Limits(max_connections=plan["clients"], max_keepalive_connections=plan["clients"])
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(*(_client(n, http, keys, plan, samples, start) for n in range(plan["clients"])))
    return samples


def load_generator(base: str, keys: dict[str, str], plan: dict[str, Any], results: Connection) -> None:
    """Entry point of the load generator's process: sends its samples back through ``results``."""
    samples = asyncio.run(_generate(base, keys, plan))
    results.send_bytes(orjson.dumps(samples.__dict__))
    results.close()


# --- report ----------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def report(samples: dict[str, Any], duration: float, rate: float, clients: int) -> bool:
    latencies: dict[str, list[float]] = samples["latencies"]
    total = sum(len(values) for values in latencies.values())
    print(f"offered {rate:.0f} requests/s from {clients} clients for {duration:.0f} s; achieved "
          f"{total / duration:.0f} requests/s")
    print(f"{'kind':<12} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind, values in latencies.items():
        print(f"{kind:<12} {len(values):>9} {len(values) / duration:>7.0f} {percentile(values, 0.5) * 1e3:>8.1f} "
              f"{percentile(values, 0.99) * 1e3:>8.1f} {samples['errors'][kind]:>7}")
    print(f"updates refused with 412 (changed since read): {samples['conflicts']}")
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
    parser.add_argument("--keep", action="store_true", help=f"leave the database {DATABASE} in place")
    parser.add_argument("--reuse", action="store_true", help=f"use {DATABASE} as loaded by an earlier --keep run")
    args = parser.parse_args(argv)

    url = database_url()
    if args.reuse and database_exists():
        print(f"reusing database {DATABASE}")
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
        with tempfile.TemporaryDirectory(prefix="soc-bench-api-") as home, soc_api(url, Path(home)) as base:
            spawn = multiprocessing.get_context("spawn")
            receive, send = spawn.Pipe(duplex=False)
            generator = spawn.Process(target=load_generator, args=(base, keys, plan, send))
            generator.start()
            send.close()
            samples = orjson.loads(receive.recv_bytes())
            generator.join()
        report(samples, args.duration, args.rate, args.clients)
        print(f"load average at the end (1, 5, 15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
              f"{os.cpu_count()} cores")
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
