"""Concurrent posts of overlapping batches: nothing stored twice, one open case per group."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from structlog.testing import capture_logs

from tests.case_api.conftest import http_client

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"


def test_concurrent_replays_of_one_batch_store_it_once(soc: SocApi, app: FastAPI, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    batch = [make_alert(NG, user=f"user-{i % 3}", minutes=i) for i in range(12)]

    def post(_: int) -> dict[str, Any]:
        with http_client(app) as http:
            response = http.post("/api/v1/alerts", json={"alerts": batch}, headers=soc.service)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(post, range(6)))

    assert sum(r["created"] for r in results) == 12
    assert sum(r["duplicates"] for r in results) == 12 * 5
    cases = soc.client.get("/api/v1/cases", headers=soc.analyst).json()
    assert sorted(c["alert_count"] for c in cases) == [4, 4, 4]
    alerts = soc.client.get("/api/v1/alerts", params={"limit": 1000}, headers=soc.analyst).json()
    assert len(alerts) == 12


def test_concurrent_overlapping_batches_keep_one_open_case_per_group(
    soc: SocApi, app: FastAPI, make_alert: MakeAlert
) -> None:
    soc.add_tenant(NG)
    alerts = [make_alert(NG, user=f"user-{i % 4}", minutes=(i * 7) % 20) for i in range(40)]
    # Each batch overlaps the next, so their row locks interleave.
    batches = [alerts[start : start + 16] for start in range(0, 40, 6)]

    def post(batch: list[dict[str, Any]]) -> dict[str, Any]:
        with http_client(app) as http:
            response = http.post("/api/v1/alerts", json={"alerts": batch}, headers=soc.service)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    with capture_logs() as logs, ThreadPoolExecutor(max_workers=len(batches)) as pool:
        results = list(pool.map(post, batches))

    # Locks are taken in one global order: no deadlock, so no retry was needed.
    assert [entry for entry in logs if entry["event"] == "alert batch retried"] == []

    assert sum(r["created"] for r in results) == 40
    cases = soc.client.get("/api/v1/cases", headers=soc.analyst).json()
    assert len(cases) == 4
    assert sum(c["alert_count"] for c in cases) == 40


def test_concurrent_claims_of_one_network_by_several_tenants_leave_exactly_one(soc: SocApi, app: FastAPI) -> None:
    tenants = [f"member-{i}" for i in range(8)]
    for tenant in tenants:
        soc.add_tenant(tenant)

    def claim(tenant: str) -> int:
        with http_client(app) as http:
            response = http.post("/api/v1/sources", headers=soc.admin, json={
                "tenant_id": tenant, "name": "dmz", "kind": "syslog-udp", "networks": ["10.20.0.0/16"]})
        assert response.status_code in (201, 409), response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        statuses = sorted(pool.map(claim, tenants))

    assert statuses == [201] + [409] * 7
    assert len(soc.client.get("/api/v1/sources", headers=soc.admin).json()) == 1
