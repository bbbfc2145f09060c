"""`soc api --workers N`: N server processes on one PostgreSQL database, each with its outbox drainer, and
one SLA sweep per round between them, whose cost does not grow with late cases it has nowhere to announce."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event

from case_api.cases.models import Case
from case_api.db import make_session_factory
from case_api.notifications.service import SocContacts
from case_api.notifications.sla import sla_breach_sweep, sweep_lock
from citysoc.apiworker import default_workers
from tests.case_api.conftest import _postgres_database, build_alert

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in (entry / "cmdline").read_text():
                found.append(int(entry.name))
    return found


def test_default_workers_one_per_core_on_postgresql_one_on_sqlite() -> None:
    assert default_workers(None) == 1
    assert default_workers("sqlite:////tmp/cases.db") == 1
    assert default_workers("postgresql+psycopg://u@h/db") == max(1, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of its own (several workers are for PostgreSQL; SQLite's default is one)."""
    yield from _postgres_database()


@pytest.mark.service
def test_two_workers_serve_one_postgresql_database(postgres_url: str, tmp_path: Path) -> None:
    db_url = postgres_url
    port = _free_port()
    env = {**os.environ, "SOC_HOME": str(tmp_path), "SOC_DATABASE_URL": db_url, "SOC_NOTIFY_INTERVAL": "0.2"}
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "citysoc.cli", "api", "--port", str(port), "--workers", "2"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "soc api --workers 2 did not answer within 90 s"
            time.sleep(0.2)
        statuses = {httpx.get(f"http://127.0.0.1:{port}/api/v1/cases", timeout=30).status_code for _ in range(10)}
        assert statuses == {401}  # answered by the application (no key), not refused by the socket
        time.sleep(1)  # a few drain rounds in each worker
        assert len(_children(server.pid)) == 2
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def test_one_sla_sweep_at_a_time_on_postgresql(db_url: str, clean_db: Engine) -> None:
    sessions = make_session_factory(clean_db)
    with sessions() as first, sessions() as second:
        assert sweep_lock(first)
        # On PostgreSQL the second drainer skips the round; SQLite has no such lock (the outbox's keys dedupe).
        assert sweep_lock(second) is (not db_url.startswith("postgresql"))
        first.commit()  # the round is over: the lock goes with the transaction
        assert sweep_lock(second)
        second.rollback()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return seen


@pytest.mark.parametrize("late_cases", [2, 6])
def test_a_sweep_with_nowhere_to_send_costs_the_same_for_any_number_of_late_cases(
    soc: SocApi, app: FastAPI, late_cases: int
) -> None:
    """Late cases of a member without contacts (and no SOC contacts) are never announced: each round must not
    look up their destinations again case by case and clock by clock."""
    soc.add_tenant("northgate-hospital")
    for number in range(late_cases):
        soc.ingest(build_alert("northgate-hospital", user=f"user{number}"))
    sweep = sla_breach_sweep(SocContacts())
    later = datetime.now(UTC) + timedelta(days=60)  # past every clock of the default contract
    seen = _statements(app.state.engine)
    with app.state.session_factory() as session:
        assert sweep(session, later) == 0
        session.commit()
    # the late cases, what was announced, the member and its contacts (and the sweep lock on PostgreSQL)
    assert len(seen) <= 5, seen


def test_a_sweep_reads_no_case_whose_late_clocks_were_announced(soc: SocApi, app: FastAPI) -> None:
    """A round after the one that announced every late clock reads no case at all: the query leaves out what was
    announced, so a desk's long-late cases do not cost every round a read of each."""
    soc.add_tenant("northgate-hospital")
    for number in range(3):
        soc.ingest(build_alert("northgate-hospital", user=f"user{number}"))
    sweep = sla_breach_sweep(SocContacts(emails=("soc@city.example",)))
    later = datetime.now(UTC) + timedelta(days=60)  # past every clock of the default contract
    loaded: list[int] = []

    def on_load(case: Case, _context: Any) -> None:
        loaded.append(case.id)

    event.listen(Case, "load", on_load)
    try:
        with app.state.session_factory() as session:
            assert sweep(session, later) == 9  # three clocks of three cases, to the SOC's address
            session.commit()
        assert len(set(loaded)) == 3
        loaded.clear()
        with app.state.session_factory() as session:
            assert sweep(session, later + timedelta(hours=1)) == 0
            session.commit()
        assert loaded == []
    finally:
        event.remove(Case, "load", on_load)
