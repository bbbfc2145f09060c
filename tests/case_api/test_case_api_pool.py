"""Many concurrent requests against one application: none waits out the connection pool (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from fastapi import FastAPI

from tests.case_api.conftest import SocApi, build_alert

#: More requests at once than AnyIO's 40 worker threads and SQLAlchemy's default 15 connections.
CONCURRENT = 60


async def _burst(app: FastAPI, headers: dict[str, str]) -> Counter[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
        responses = await asyncio.gather(
            *(client.get("/api/v1/cases", params={"open": "true"}, headers=headers) for _ in range(CONCURRENT))
        )
    return Counter(response.status_code for response in responses)


def test_sixty_concurrent_queue_reads_all_answer(soc: SocApi, app: FastAPI) -> None:
    """With fewer connections than threads, this stalled for the pool's 30 s timeout and answered 500s."""
    soc.add_tenant("northgate-hospital")
    soc.ingest(build_alert("northgate-hospital"))
    assert asyncio.run(_burst(app, soc.analyst)) == Counter({200: CONCURRENT})
