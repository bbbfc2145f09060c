"""The queue cache (cases/queue.py, ``QueueCache``): a cached page is served only while it is the page a fresh read
gives, in the caller's own scope. Every change a page shows (a case's fields, a new case, the tenant's criticality
and contract, a due time passing) is seen on the next read, also when another process (another app on the same
database, as another `soc api` worker) made it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.cases.queue import QueueCache, queue_body, queue_json, queue_page
from case_api.db import utcnow
from case_api.settings import Settings
from tests.case_api.conftest import SocApi, http_client

if TYPE_CHECKING:
    import httpx

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"
BUSINESS = {"kind": "business_hours", "timezone": "Europe/London",
            "hours": {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}, "holidays": []}


def _fresh(app: FastAPI, scope: Collection[str] | None, now: datetime, **query: Any) -> bytes:
    with app.state.session_factory() as session:
        return queue_json(queue_page(session=session, scope=scope, now=now, **query))


def _cached(app: FastAPI, cache: QueueCache, scope: Collection[str] | None, now: datetime, **query: Any) -> bytes:
    with app.state.read_session_factory() as session:
        return queue_body(session=session, cache=cache, scope=scope, now=now, **query)


def _world(soc: SocApi, make_alert: MakeAlert) -> list[int]:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    ids: list[int] = []
    for n, (tenant, level) in enumerate([(NG, "critical"), (NG, "high"), (RS, "critical"), (RS, "medium")]):
        ids += soc.ingest(make_alert(tenant, user=f"user{n}", level=level))["cases"]
    return ids


def test_a_page_is_served_from_the_cache_until_a_change_it_shows(soc: SocApi, make_alert: MakeAlert,
                                                                  app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    targets = soc.client.get(f"/api/v1/tenants/{NG}/contract", headers=soc.admin).json()["contract"]["targets"]
    cache = QueueCache()
    now = utcnow()
    first = _cached(app, cache, None, now, open_only=True)
    assert first == _fresh(app, None, now, open_only=True)
    assert _cached(app, cache, None, now, open_only=True) is first  # served from the cache

    changes: list[Callable[[], Any]] = [
        lambda: soc.client.patch(f"/api/v1/cases/{ids[0]}", json={"assignee": "test-soc_analyst"},
                                 headers=soc.analyst),
        lambda: soc.client.patch(f"/api/v1/cases/{ids[2]}", json={"severity": "low"}, headers=soc.analyst),
        lambda: soc.client.patch(f"/api/v1/tenants/{RS}", json={"asset_criticality": "critical"},
                                 headers=soc.admin),
        lambda: soc.client.put(f"/api/v1/tenants/{NG}/contract", json={"calendar": BUSINESS, "targets": targets},
                               headers=soc.admin),
        lambda: soc.ingest(make_alert(RS, user="newcomer", level="critical")),
    ]
    for change in changes:
        before = _cached(app, cache, None, now, open_only=True)
        response = change()
        assert getattr(response, "status_code", 200) == 200
        after = _cached(app, cache, None, now, open_only=True)
        assert after == _fresh(app, None, now, open_only=True)
        assert after != before


def test_a_page_is_read_again_when_a_due_time_on_it_passes(soc: SocApi, make_alert: MakeAlert,
                                                            app: FastAPI) -> None:
    _world(soc, make_alert)
    cache = QueueCache()
    now = utcnow()
    first = _cached(app, cache, None, now, open_only=True)
    assert b'"breached":true' not in first
    later = now + timedelta(days=30)  # past every running clock's due time
    body = _cached(app, cache, None, later, open_only=True)
    assert body == _fresh(app, None, later, open_only=True)
    assert b'"breached":false' not in body.replace(b'"done_at":null', b"")


def test_a_page_with_a_paused_case_is_not_kept(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    response = soc.client.patch(f"/api/v1/cases/{ids[0]}", json={"status": "awaiting_member"}, headers=soc.analyst)
    assert response.status_code == 200, response.text
    cache = QueueCache()
    now = utcnow()
    first = _cached(app, cache, None, now, open_only=True)
    assert b'"paused":true' in first
    later = now + timedelta(minutes=7)  # the paused clocks' due times move while the case waits
    assert _cached(app, cache, None, later, open_only=True) == _fresh(app, None, later, open_only=True)
    assert _cached(app, cache, None, later, open_only=True) is not first


def test_a_cached_page_is_only_served_within_its_scope(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    _world(soc, make_alert)
    cache = QueueCache()
    now = utcnow()
    for scope in (None, {NG}, {RS}, set(), {NG, RS}):
        _cached(app, cache, scope, now, open_only=True)
    for scope in (None, {NG}, {RS}, set(), {RS, NG}):
        assert _cached(app, cache, scope, now, open_only=True) == _fresh(app, scope, now, open_only=True)
    # Through the API: each member's responder gets only its own cases, read after the other's page was cached.
    ng = soc.headers(Role.TENANT_RESPONDER, tenant=NG)
    rs = soc.headers(Role.TENANT_RESPONDER, tenant=RS)
    for _ in range(2):
        for tenant, headers in ((NG, ng), (RS, rs)):
            response = soc.client.get("/api/v1/cases", params={"open": "true", "limit": 50}, headers=headers)
            assert response.status_code == 200, response.text
            assert {case["tenant_id"] for case in response.json()} == {tenant}
        city = soc.client.get("/api/v1/cases", params={"open": "true", "limit": 50}, headers=soc.analyst)
        assert {case["tenant_id"] for case in city.json()} == {NG, RS}


@pytest.fixture
def second_app(settings: Settings) -> Iterator[FastAPI]:
    """Another app on the same database: another worker process's cache."""
    other = create_app(settings, migrate=False)
    yield other
    other.state.engine.dispose()


def test_a_change_made_by_another_worker_is_seen_on_the_next_read(soc: SocApi, make_alert: MakeAlert,
                                                                  second_app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    other: httpx.Client
    with http_client(second_app) as other:
        def queue() -> list[dict[str, Any]]:
            response = other.get("/api/v1/cases", params={"open": "true", "limit": 50}, headers=soc.analyst)
            assert response.status_code == 200, response.text
            result: list[dict[str, Any]] = response.json()
            return result

        assert queue() == queue()  # the second from the other worker's cache
        etag = soc.client.get(f"/api/v1/cases/{ids[1]}", headers=soc.analyst).headers["ETag"]
        response = soc.client.patch(f"/api/v1/cases/{ids[1]}", json={"assignee": "test-soc_analyst"},
                                    headers={**soc.analyst, "If-Match": etag})
        assert response.status_code == 200, response.text
        changed = {case["id"]: case for case in queue()}[ids[1]]
        assert changed["assignee"] == "test-soc_analyst"
        assert changed["version"] == response.json()["version"]
        soc.ingest(make_alert(NG, user="late", level="critical"))
        assert len(queue()) == len(ids) + 1
