"""Alerts into cases: how fast the case API places alerts (incidents, entity risk) and links campaigns.

`python -m bench.cases [--alerts N] [--tenants T] [--batch B] [--postgres] [--baseline COMMIT]`. Not a test:
it prints figures. Alerts go through `case_api.cases.flows.ingest_alerts` (what `POST /api/v1/alerts` runs,
without HTTP and JSON) in batches of B, each batch one transaction, into a fresh database: SQLite under
`bench/out/cases/` (gitignored), or a new PostgreSQL database at 127.0.0.1:5432 with `--postgres`. Alerts
are spread over T tenants and a day; each names a user, a host and a source address drawn so that users
and addresses repeat within a tenant (incidents grow) and a fifth come from 250 addresses that roam the
city (campaigns form); a tenth are low level (held as entity risk until their entity gathers enough).

Rows: the current code with the shipped campaign rules, the same without campaign rules (incidents
only), and `--baseline` (default 2429e85: one open case per group key, no entities, no risk, no
campaigns), read with `git archive` and run in a child process on the same alerts and database kind.
Figures: alerts/s, p50/p95 of one batch, cases, held alerts and campaigns at the end.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import func, select

from case_api.alerts.models import Alert
from case_api.campaigns.models import Campaign
from case_api.cases.models import Case
from case_api.db import make_engine, make_session_factory

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "cases"
BASELINE = "2429e85"
START = datetime(2026, 3, 2, tzinfo=UTC)
LEVELS = ("low", "medium", "medium", "high", "high", "high", "critical", "medium", "high", "medium")
RULES = [str(uuid.UUID(int=n + 1, version=4)) for n in range(40)]

# Runs in the baseline's checkout (its own case_api), on the alerts in argv[1] and the database URL argv[2].
_RUN = """
import inspect, sys, time, logging, orjson, structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from case_api.alerts.models import AlertIn
from case_api.cases.flows import ingest_alerts
from case_api.db import make_engine, make_session_factory, upgrade_database
from case_api.tenants.models import Tenant
{imports}
raw = orjson.loads(open(sys.argv[1], "rb").read())
batch, tenants = int(sys.argv[3]), int(sys.argv[4])
alerts = [AlertIn.model_validate(a) for a in raw]
posted_raw = "raw_alerts" in inspect.signature(ingest_alerts).parameters
engine = make_engine(sys.argv[2]); upgrade_database(engine)
sessions = make_session_factory(engine)
with sessions() as session:
    session.add_all([Tenant(id=f"member-{{n:03d}}", name=f"Member {{n}}") for n in range(tenants)]); session.commit()
durations = []
for first in range(0, len(alerts), batch):
    begin = time.perf_counter()
    with sessions() as session:
        if posted_raw:  # the API's own validation of each posted alert is part of the work
            ingest_alerts(session=session, raw_alerts=raw[first:first + batch], actor="bench"{extra})
        else:
            ingest_alerts(session=session, alerts=alerts[first:first + batch], actor="bench"{extra})
    durations.append(time.perf_counter() - begin)
print(orjson.dumps(durations).decode())
"""


def make_alerts(count: int, tenants: int, *, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    alerts = []
    for n in range(count):
        tenant = f"member-{n % tenants:03d}"
        roaming = rng.random() < 0.2
        local = f"10.{n % tenants}.{rng.randrange(40)}.{rng.randrange(50)}"
        alerts.append({
            "id": f"bench-{n:08d}",
            "@timestamp": (START + timedelta(seconds=rng.randrange(86400))).isoformat(),
            "organization": {"id": tenant},
            "rule": {"id": rng.choice(RULES), "title": "bench rule", "level": LEVELS[n % len(LEVELS)]},
            "event": {"ids": [f"event-{n}"]},
            "entities": {"user.name": [f"user{rng.randrange(200)}"],
                         "source.ip": [f"203.0.113.{rng.randrange(250)}" if roaming else local],
                         "host.name": [f"host{rng.randrange(30)}"]},
        })
    return alerts


@contextmanager
def database(postgres: bool, name: str) -> Iterator[str]:
    if not postgres:
        folder = OUT / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        yield f"sqlite:///{folder / 'cases.db'}"
        return
    database_name = f"citysoc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database_name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{database_name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')


def run(source: Path, alerts: Path, url: str, *, batch: int, tenants: int, campaigns: bool | None) -> list[float]:
    """Batch durations of ingesting ``alerts`` with the code in ``source``; ``campaigns`` None: a baseline
    that knows no campaign rules."""
    imports = "from case_api.campaigns.rules import DEFAULT_CAMPAIGN_RULES, load_campaign_rules"
    extra = ""
    if campaigns is not None:
        extra = ", campaign_rules=" + ("load_campaign_rules([DEFAULT_CAMPAIGN_RULES])" if campaigns else "()")
    script = _RUN.format(imports=imports if campaigns is not None else "", extra=extra)
    done = subprocess.run([sys.executable, "-c", script, str(alerts), url, str(batch), str(tenants)],
                          capture_output=True, text=True, cwd=source,
                          env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise SystemExit(f"run in {source} failed:\n{done.stderr[-3000:]}")
    durations: list[float] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return durations


def tally(url: str) -> str:
    """Cases, held alerts and campaigns in a database the current code wrote."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            cases = session.scalar(select(func.count()).select_from(Case)) or 0
            held = session.scalar(select(func.count()).select_from(Alert).where(Alert.case_id.is_(None))) or 0
            campaigns = session.scalar(select(func.count()).select_from(Campaign)) or 0
    finally:
        engine.dispose()
    return f"cases {cases:6d}  held {held:5d}  campaigns {campaigns:4d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare with ('' for none)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    alerts_file = OUT / "alerts.json"
    alerts_file.write_bytes(orjson.dumps(make_alerts(args.alerts, args.tenants)))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{args.alerts} alerts, {args.tenants} tenants, batches of {args.batch}, {backend}")
    rows: list[tuple[str, Path, bool | None]] = [("incidents + campaigns", REPO, True), ("incidents only", REPO, False)]
    with tempfile.TemporaryDirectory(prefix="citysoc-baseline-") as folder:
        if args.baseline:
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "case_api", "citysoc"],
                                     capture_output=True, check=True)
            with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
                tar.extractall(folder, filter="data")
            rows.append((f"baseline {args.baseline}", Path(folder), None))
        rates = {}
        for label, source, campaigns in rows:
            with database(args.postgres, uuid.uuid4().hex[:8]) as url:
                durations = run(source, alerts_file, url, batch=args.batch, tenants=args.tenants,
                                campaigns=campaigns)
                counts = tally(url) if campaigns is not None else "(previous schema)"
            durations.sort()
            rates[label] = args.alerts / sum(durations)
            p50, p95 = statistics.median(durations), durations[int(0.95 * (len(durations) - 1))]
            print(f"  {label:<24} {rates[label]:7.0f} alerts/s   batch p50 {p50 * 1000:6.0f} ms"
                  f"  p95 {p95 * 1000:6.0f} ms   {counts}")
    base = rates.get(f"baseline {args.baseline}")
    if base:
        print(f"  current / baseline: x{rates['incidents + campaigns'] / base:.2f} with campaigns, "
              f"x{rates['incidents only'] / base:.2f} incidents only")


if __name__ == "__main__":
    main()
