"""Many concurrent requests against one application: none waits out the connection pool (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio.to_thread
import httpx
from fastapi import FastAPI

from case_api.db import API_THREADS, POOL
from tests.case_api.conftest import SocApi, build_alert

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
