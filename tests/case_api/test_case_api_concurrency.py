"""Concurrent posts of overlapping batches: nothing stored twice, one open case per group."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from structlog.testing import capture_logs

from case_api.auth.models import Role
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


def _status_replay(events: list[dict[str, Any]]) -> list[str]:
    """The statuses a case went through, read from its audit trail, checking each `from` is the last `to`."""
    statuses = ["new"]
    for event in events:
        if event["action"] == "status_changed":
            assert event["detail"]["from"] == statuses[-1], events
            statuses.append(event["detail"]["to"])
    return statuses


def test_twenty_concurrent_status_changes_replay_to_the_stored_status_and_closed_stays_final(
    soc: SocApi, app: FastAPI, make_alert: MakeAlert
) -> None:
    soc.add_tenant(NG)
    [case_id] = soc.ingest(make_alert(NG))["cases"]
    # Every order of these is possible; a stale read would let a late writer reopen a closed case or
    # write a `from` that is not the previous `to`.
    targets = ["in_progress", "on_hold", "resolved", "closed", "in_progress"] * 4

    def patch(target: str) -> int:
        with http_client(app) as http:
            body = {"status": target} | ({"resolution": "true_positive"} if target == "closed" else {})
            response = http.patch(f"/api/v1/cases/{case_id}", json=body, headers=soc.analyst)
        assert response.status_code in (200, 409), response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(patch, targets))

    assert 200 in statuses
    case = soc.case(case_id, headers=soc.analyst)
    events = soc.client.get(f"/api/v1/cases/{case_id}/events", params={"limit": 1000}, headers=soc.analyst).json()
    replay = _status_replay(events)
    assert replay[-1] == case["status"]
    if "closed" in replay:
        assert replay.index("closed") == len(replay) - 1  # nothing after closed
    assert case["version"] == 1 + len(replay) - 1 + 1  # created at 1, the alert added, one per change
    assert len(replay) - 1 <= statuses.count(200)  # a 200 may also be a no-op (already at the target)


def test_concurrent_changes_from_one_read_version_let_exactly_one_through(
    soc: SocApi, app: FastAPI, make_alert: MakeAlert
) -> None:
    soc.add_tenant(NG)
    [case_id] = soc.ingest(make_alert(NG))["cases"]
    for n in range(20):
        soc.headers(Role.SOC_ANALYST, name=f"analyst-{n}")
    read = soc.client.get(f"/api/v1/cases/{case_id}", headers=soc.analyst)
    version = read.headers["etag"]

    def assign(n: int) -> int:
        with http_client(app) as http:
            response = http.patch(f"/api/v1/cases/{case_id}", json={"assignee": f"analyst-{n}"},
                                  headers={**soc.analyst, "If-Match": version})
        assert response.status_code in (200, 412), response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(assign, range(20)))

    assert sorted(statuses) == [200] + [412] * 19
    case = soc.case(case_id)
    assigned = [e for e in case["events"] if e["action"] == "assigned"]
    assert len(assigned) == 1 and assigned[0]["detail"]["to"] == case["assignee"]


def test_etag_follows_every_change_and_a_stale_if_match_is_412(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    [case_id] = soc.ingest(make_alert(NG))["cases"]
    url = f"/api/v1/cases/{case_id}"
    soc.headers(Role.SOC_ANALYST, name="ann")
    soc.headers(Role.SOC_LEAD, name="bob")
    first = soc.client.get(url, headers=soc.analyst)
    assert first.headers["etag"] == f'"{first.json()["version"]}"'

    def patch(body: dict[str, Any], if_match: str) -> Any:
        return soc.client.patch(url, json=body, headers={**soc.analyst, "If-Match": if_match})

    changed = patch({"status": "in_progress"}, first.headers["etag"])
    assert changed.status_code == 200
    assert changed.headers["etag"] != first.headers["etag"]
    stale = patch({"assignee": "ann"}, first.headers["etag"])
    assert stale.status_code == 412
    assert "read it again" in stale.json()["detail"]
    assert soc.case(case_id)["assignee"] is None
    assert patch({"assignee": "ann"}, f"W/{changed.headers['etag']}").status_code == 200
    assert patch({"assignee": "bob"}, "*").status_code == 200
    assert patch({"assignee": "x"}, "yesterday").status_code == 422
    assert patch({"assignee": "x"}, '"99999999999"').status_code == 422
