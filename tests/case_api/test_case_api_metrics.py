"""GET /metrics: MTTA, MTTT and MTTR with percentiles and SLA breaches per member and severity, from the
cases' status timestamps; a member's keys see only their own figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from case_api.auth.models import Role
from case_api.cases.models import Case
from case_api.sla.metrics import percentile
from case_api.sla.service import refresh_case

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"
MINUTE = timedelta(minutes=1)


def _open(soc: SocApi, make_alert: MakeAlert, tenant: str, level: str, user: str) -> int:
    [case_id] = soc.ingest(make_alert(tenant, user=user, level=level))["cases"]
    return int(case_id)


def _timeline(app: FastAPI, case_id: int, opened: datetime, **minutes: int | None) -> None:
    """Give the case known status timestamps: opened at ``opened``, each clock stopped after its minutes."""
    with app.state.session_factory() as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.created_at = opened
        for column, after in minutes.items():
            setattr(case, column, None if after is None else opened + after * MINUTE)
        if case.resolved_at is not None:
            case.status = "resolved"
        refresh_case(session=session, case=case)
        session.commit()


def _metrics(soc: SocApi, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = soc.client.get("/api/v1/metrics", params=params, headers=headers or soc.analyst)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_percentiles_are_nearest_rank() -> None:
    assert [percentile([10, 20, 30, 40], p) for p in (50, 90, 95)] == [20, 40, 40]
    assert [percentile([5], p) for p in (50, 95)] == [5, 5]
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 95)] == [50, 90, 95]


def test_mtta_mttt_mttr_per_member_and_severity(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    opened = datetime.now(UTC) - timedelta(days=3)
    # Four high cases of the hospital: acknowledged after 10..40 min, triaged after 30..120, and resolved after
    # 2 h, 5 h and 30 h (past the 1-day target); the fourth still open.
    stops = [(10, 30, 120), (20, 60, 300), (30, 90, 1800), (40, 120, None)]
    for n, (ack, triage, resolve) in enumerate(stops):
        case_id = _open(soc, make_alert, NG, "high", f"h{n}")
        _timeline(app, case_id, opened, acknowledged_at=ack, triaged_at=triage, resolved_at=resolve)
    # A critical case acknowledged after 20 min (target 15 min) and never triaged: 3 days late by now.
    critical = _open(soc, make_alert, NG, "critical", "c0")
    _timeline(app, critical, opened, acknowledged_at=20)
    # The school: one medium case, acknowledged after 5 min.
    school = _open(soc, make_alert, RS, "medium", "s0")
    _timeline(app, school, opened, acknowledged_at=5)

    answer = _metrics(soc)
    rows = {(row["tenant_id"], row["severity"]): row for row in answer["rows"]}
    assert list(rows) == [(NG, "critical"), (NG, "high"), (RS, "medium")]
    high = rows[NG, "high"]
    assert high["cases"] == 4
    assert high["acknowledge"] == {"count": 4, "running": 0, "mean_seconds": 25 * 60.0, "p50_seconds": 1200.0,
                                   "p90_seconds": 2400.0, "p95_seconds": 2400.0, "breached": 0}
    assert (high["triage"]["mean_seconds"], high["triage"]["p50_seconds"], high["triage"]["breached"]) == (
        75 * 60.0, 3600.0, 0)
    resolve = high["resolve"]
    assert (resolve["count"], resolve["running"], resolve["breached"]) == (3, 1, 2)  # 30 h late, the open one too
    assert (resolve["mean_seconds"], resolve["p50_seconds"], resolve["p95_seconds"]) == (
        (120 + 300 + 1800) / 3 * 60, 300 * 60.0, 1800 * 60.0)
    late = rows[NG, "critical"]
    assert late["acknowledge"]["breached"] == 1 and late["acknowledge"]["p50_seconds"] == 1200.0
    assert (late["triage"]["count"], late["triage"]["running"], late["triage"]["breached"]) == (0, 1, 1)
    assert late["triage"]["mean_seconds"] is None and late["triage"]["p90_seconds"] is None
    overall = {row["severity"]: row for row in answer["overall"]}
    assert [row["severity"] for row in answer["overall"]] == ["critical", "high", "medium"]
    assert overall["high"]["cases"] == 4 and overall["medium"]["tenant_id"] is None

    # The period: cases opened before `since` are left out; one tenant can be asked for.
    assert _metrics(soc, since=(opened + MINUTE).isoformat())["rows"] == []
    assert [row["tenant_id"] for row in _metrics(soc, tenant=RS)["rows"]] == [RS]


def test_a_members_keys_see_only_its_own_metrics(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    for tenant in (NG, RS):
        _open(soc, make_alert, tenant, "high", "alice")
    assert {row["tenant_id"] for row in _metrics(soc)["rows"]} == {NG, RS}
    for role in (Role.TENANT_RESPONDER, Role.TENANT_VIEWER):
        own = soc.headers(role, tenant=NG)
        answer = _metrics(soc, own)
        assert [row["tenant_id"] for row in answer["rows"]] == [NG]
        assert [row["cases"] for row in answer["overall"]] == [1]  # the overall rows are its own too
        crossing = _metrics(soc, own, tenant=RS)
        assert crossing["rows"] == crossing["overall"] == []
        assert RS not in str(_metrics(soc, own))
    for role in (Role.SERVICE, Role.RULE_AUTHOR):
        assert soc.client.get("/api/v1/metrics", headers=soc.headers(role)).status_code == 403
    assert soc.client.get("/api/v1/metrics").status_code == 401


def test_merged_cases_and_bad_periods(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    target = _open(soc, make_alert, NG, "high", "alice")
    source = _open(soc, make_alert, NG, "high", "bob")
    assert soc.client.post(f"/api/v1/cases/{target}/merge", json={"sources": [source]},
                           headers=soc.analyst).status_code == 200
    [row] = _metrics(soc)["rows"]
    assert row["cases"] == 1 and row["resolve"]["running"] == 1  # the duplicate does not count as resolved
    for params, advice in [
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since must be before until"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "at most 366 days"),
        ({"until": "0001-01-02T00:00:00"}, "give since as well"),
        ({"since": "yesterday"}, "since"),
        ({"tenant": "x" * 64}, "tenant"),
    ]:
        response = soc.client.get("/api/v1/metrics", params=params, headers=soc.analyst)
        assert response.status_code == 422 and advice in response.json()["detail"], response.text
