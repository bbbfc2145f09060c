"""Many concurrent requests against one application: none waits out the connection pool (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio.to_thread
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from case_api.auth.models import Role
from case_api.db import API_THREADS, POOL
from tests.case_api.conftest import POSTGRES_ADMIN_DSN, SocApi, build_alert

#: More requests at once than the API's worker threads (db.API_THREADS) and SQLAlchemy's default 15 connections.
CONCURRENT = 60


async def _burst(app: FastAPI, headers: dict[str, str]) -> tuple[Counter[int], float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
        responses = await asyncio.gather(
            *(client.get("/api/v1/cases", params={"open": "true"}, headers=headers) for _ in range(CONCURRENT))
        )
    threads = anyio.to_thread.current_default_thread_limiter().total_tokens
    return Counter(response.status_code for response in responses), threads


def test_sixty_concurrent_queue_reads_all_answer(soc: SocApi, app: FastAPI) -> None:
    """With fewer connections than threads, this stalled for the pool's 30 s timeout and answered 500s."""
    soc.add_tenant("northgate-hospital")
    soc.ingest(build_alert("northgate-hospital"))
    statuses, threads = asyncio.run(_burst(app, soc.analyst))
    assert statuses == Counter({200: CONCURRENT})
    assert threads == API_THREADS  # the pool below is sized for these, not AnyIO's default 40


def test_the_pool_holds_more_connections_than_the_api_has_threads() -> None:
    assert POOL["pool_size"] + POOL["max_overflow"] > API_THREADS


def test_a_change_on_a_connection_the_server_closed_is_made_on_a_new_one(soc: SocApi, app: FastAPI) -> None:
    """The read and write engines hand out their connections without a ping (db.make_write_engine): a detail read
    or a PATCH whose first statement finds its connection dead (the server restarted) is made once more on a new
    connection, and once."""
    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to close a connection")
    soc.add_tenant("northgate-hospital")
    soc.headers(Role.SOC_ANALYST, name="ana")
    [case_id] = soc.ingest(build_alert("northgate-hospital"))["cases"]
    first = soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "ana"}, headers=soc.analyst)
    assert first.status_code == 200, first.text
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        closed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                               (app.state.engine.url.database,)).fetchone()
    assert closed is not None and closed[0] >= 1
    read = soc.client.get(f"/api/v1/cases/{case_id}", headers=soc.analyst)  # the pipelined detail read
    assert read.status_code == 200 and read.content == first.content, read.text
    second = soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": None},
                              headers={**soc.analyst, "If-Match": first.headers["etag"]})
    assert second.status_code == 200, second.text
    assert second.json()["assignee"] is None and second.json()["version"] == first.json()["version"] + 1
    assigned = [event["detail"] for event in second.json()["events"] if event["action"] == "assigned"]
    assert assigned == [{"from": None, "to": "ana"}, {"from": "ana", "to": None}]
    verified = soc.client.get("/api/v1/audit/verify", headers=soc.admin).json()
    assert verified["ok"] is True, verified
