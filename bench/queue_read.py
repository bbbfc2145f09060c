"""The queue read's server cost in one process: `GET /cases` against the same page built with one ORM object and
one `CaseOut` per case and its clocks computed (the path the case detail takes).

`python -m bench.queue_read [--cases 3000] [--tenants 20] [--reads 2000]`

1. Creates the PostgreSQL database `citysoc_queue_read` at 127.0.0.1:5432 (dropped at the end) and fills it with
   `--cases` cases over `--tenants` members (a third open), each with the due times the default contract gives.
2. Serves the case API in this process (ASGI, no socket) with one extra route, `/api/v1/model-cases`: the same
   query, scope and answer built from `queue_query` + `case_outs` (asserted byte-equal to `GET /cases` but for the
   clocks' breach flags as of the moment read).
3. Reads the open queue (`?open=true&limit=50`, as a city analyst) `--reads` times by each route, alternating in
   blocks of 100; prints per read the wall time (p50, p99) and this process's CPU time, and the ratios.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import psycopg
from fastapi import Depends, FastAPI, Query

from case_api.app import create_app
from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.roles import CASE_READERS
from case_api.auth.service import create_api_key
from case_api.cases.models import Case, CaseOut
from case_api.cases.service import case_outs, queue_query
from case_api.db import SessionDep
from case_api.settings import Settings
from case_api.sla.clocks import refresh_due_times
from case_api.sla.models import DEFAULT_CONTRACT
from case_api.tenants.models import Tenant
from citysoc.caseclient import InProcessTransport

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
DATABASE = "citysoc_queue_read"
LEVELS = ("low", "medium", "high", "high", "critical")
BLOCK = 100
QUEUE = {"open": "true", "limit": "50"}


@contextmanager
def database() -> Iterator[str]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def fill(app: FastAPI, *, cases: int, tenants: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with app.state.session_factory() as session:
        names = [f"member-{n:03d}" for n in range(tenants)]
        session.add_all(Tenant(id=name, name=name) for name in names)
        session.flush()
        for number in range(cases):
            opened = now - timedelta(minutes=rng.randrange(3 * 24 * 60))
            status = rng.choice(("new", "in_progress", "on_hold")) if rng.random() < 1 / 3 else "closed"
            case = Case(tenant_id=names[number % tenants], title=f"Suspicious activity {number}", status=status,
                        severity=rng.choice(LEVELS), group_key=f"user.name=user{number}", alert_count=3,
                        first_seen=opened, last_seen=opened, created_at=opened, updated_at=opened,
                        techniques=["T1110"], resolution="benign" if status == "closed" else None)
            if status != "new":
                case.acknowledged_at = case.triaged_at = opened + timedelta(minutes=rng.randrange(1, 90))
            if status == "closed":
                case.resolved_at = case.closed_at = opened + timedelta(hours=rng.randrange(1, 48))
            refresh_due_times(case, DEFAULT_CONTRACT)
            session.add(case)
        session.commit()


def add_model_route(app: FastAPI) -> None:
    """The queue built with one ORM object and one model per case (``queue_query`` + ``case_outs``)."""

    @app.get("/api/v1/model-cases", response_model=list[CaseOut], dependencies=[Depends(require_roles(*CASE_READERS))])
    def model_cases(session: SessionDep, scope: TenantScope,
                    open_only: Annotated[bool, Query(alias="open")] = False, limit: int = 100) -> list[CaseOut]:
        cases = session.scalars(queue_query(scope=scope, open_only=open_only).limit(limit))
        return case_outs(session=session, cases=list(cases))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_read", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args(argv)
    with database() as url, tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home), database_url=url))
        add_model_route(app)
        fill(app, cases=args.cases, tenants=args.tenants)
        with app.state.session_factory() as session:
            _, secret = create_api_key(session=session, key_in=ApiKeyIn(name="bench-analyst", role=Role.SOC_ANALYST))
        headers = {"Authorization": f"Bearer {secret}"}
        routes = {"GET /cases": "/api/v1/cases", "model per case": "/api/v1/model-cases"}
        with httpx.Client(transport=InProcessTransport(app), base_url="http://bench") as http:
            bodies = {name: http.get(path, params=QUEUE, headers=headers) for name, path in routes.items()}
            for response in bodies.values():
                assert response.status_code == 200, response.text
            new, old = (response.json() for response in bodies.values())
            assert len(new) == 50 and [c["id"] for c in new] == [c["id"] for c in old]
            assert [{**c, "sla": None} for c in new] == [{**c, "sla": None} for c in old]
            wall: dict[str, list[float]] = {name: [] for name in routes}
            cpu: dict[str, float] = dict.fromkeys(routes, 0.0)
            for _ in range(args.reads // BLOCK):
                for name, path in routes.items():
                    cpu_begin = time.process_time()
                    for _ in range(BLOCK):
                        begin = time.perf_counter()
                        response = http.get(path, params=QUEUE, headers=headers)
                        wall[name].append(time.perf_counter() - begin)
                        assert response.status_code == 200
                    cpu[name] += time.process_time() - cpu_begin
        app.state.engine.dispose()
    print(f"{args.cases} cases over {args.tenants} members in PostgreSQL; open queue, 50 cases a read; "
          f"{args.reads} reads per route alternating in blocks of {BLOCK}, in one process")
    for name in routes:
        reads = len(wall[name])
        print(f"{name:<16} wall p50 {percentile(wall[name], 0.5) * 1e3:6.2f} ms  p99 "
              f"{percentile(wall[name], 0.99) * 1e3:6.2f} ms  CPU {cpu[name] / reads * 1e3:6.2f} ms per read")
    new_name, old_name = routes
    print(f"ratio model per case / GET /cases: wall p50 "
          f"{percentile(wall[old_name], 0.5) / percentile(wall[new_name], 0.5):.2f}x, CPU "
          f"{cpu[old_name] / cpu[new_name]:.2f}x")


if __name__ == "__main__":
    main()
