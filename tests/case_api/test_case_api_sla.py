"""SLA clocks on cases: due times and breach flags from each member's contract, what stops and pauses them,
the queue ordered by due time then severity, and the contract endpoints (who may read and set one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from case_api.auth.models import Role
from case_api.cases.models import Case
from case_api.sla.calendar import BusinessHours, Weekday
from case_api.sla.models import DEFAULT_CONTRACT
from case_api.sla.service import refresh_case

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"
TARGETS = DEFAULT_CONTRACT.model_dump(mode="json")["targets"]
BUSINESS = {"kind": "business_hours", "timezone": "Europe/London",
            "hours": {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}, "holidays": ["2026-12-25"]}


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _case(soc: SocApi, make_alert: MakeAlert, tenant: str = NG, **kwargs: Any) -> dict[str, Any]:
    """One case; a low one from two alerts (one low alert is held as entity risk)."""
    alerts = [make_alert(tenant, **kwargs) for _ in range(2 if kwargs.get("level") == "low" else 1)]
    [case_id] = soc.ingest(*alerts)["cases"]
    return soc.case(case_id)


def _queue(soc: SocApi, headers: dict[str, str] | None = None, **params: Any) -> list[dict[str, Any]]:
    response = soc.client.get("/api/v1/cases", params={"open": "true", **params}, headers=headers or soc.analyst)
    assert response.status_code == 200, response.text
    queue: list[dict[str, Any]] = response.json()
    return queue


def _patch(soc: SocApi, case_id: int, **body: Any) -> dict[str, Any]:
    response = soc.client.patch(f"/api/v1/cases/{case_id}", json=body, headers=soc.analyst)
    assert response.status_code == 200, response.text
    case: dict[str, Any] = response.json()
    return case


def _age(app: FastAPI, case_id: int, by: timedelta, *columns: str) -> None:
    """Move the case's opening (and the given clock columns) ``by`` into the past, as if time had passed."""
    with app.state.session_factory() as session:
        case = session.get(Case, case_id)
        for column in ("created_at", *columns):
            setattr(case, column, getattr(case, column) - by)
        refresh_case(session=session, case=case)
        session.commit()


def _contract(soc: SocApi, tenant: str, document: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return soc.client.put(f"/api/v1/tenants/{tenant}/contract", json=document, headers=headers or soc.admin)


def test_every_case_carries_due_times_from_the_default_contract(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case = _case(soc, make_alert, level="critical")
    created = _at(case["created_at"])
    assert created is not None
    sla = case["sla"]
    assert (sla["contract"], sla["calendar"], sla["paused"]) == ("default", "24x7", False)
    assert {clock: (sla[clock]["target_seconds"], _at(sla[clock]["due_at"])) for clock in
            ("acknowledge", "triage", "resolve")} == {
        "acknowledge": (900, created + timedelta(minutes=15)),
        "triage": (3600, created + timedelta(hours=1)),
        "resolve": (14400, created + timedelta(hours=4)),
    }
    assert not any(sla[clock]["breached"] or sla[clock]["done_at"] for clock in ("acknowledge", "triage", "resolve"))
    assert _at(case["sla_due_at"]) == created + timedelta(minutes=15)
    assert case["acknowledged_at"] is case["triaged_at"] is case["resolved_at"] is None
    # A more severe alert joining the case brings the tighter targets of its severity.
    medium = _case(soc, make_alert, user="bob", level="medium")
    assert _at(medium["sla"]["acknowledge"]["due_at"]) == _at(medium["created_at"]) + timedelta(hours=4)  # type: ignore[operator]
    soc.ingest(make_alert(NG, user="bob", level="high", minutes=1))
    raised = soc.case(medium["id"])
    assert raised["severity"] == "high"
    assert _at(raised["sla_due_at"]) == _at(medium["created_at"]) + timedelta(hours=1)  # type: ignore[operator]


def test_clocks_stop_on_acknowledge_triage_and_resolve_and_breaches_show(
    soc: SocApi, make_alert: MakeAlert, app: FastAPI
) -> None:
    soc.add_tenant(NG)
    case = _case(soc, make_alert, level="critical")
    case_id = case["id"]
    _age(app, case_id, timedelta(minutes=30))  # acknowledge (15 min) is overdue, triage (1 h) is not
    late = soc.case(case_id)["sla"]
    assert (late["acknowledge"]["breached"], late["triage"]["breached"]) == (True, False)
    # The overdue case is at the head of the queue, before a fresher critical case.
    fresh = _case(soc, make_alert, user="bob", level="critical")
    assert [c["id"] for c in _queue(soc)] == [case_id, fresh["id"]]

    soc.headers(Role.SOC_ANALYST, name="ana")
    assigned = _patch(soc, case_id, assignee="ana")
    assert assigned["acknowledged_at"] is not None and assigned["triaged_at"] is None
    assert assigned["sla"]["acknowledge"]["done_at"] == assigned["acknowledged_at"]
    assert assigned["sla"]["acknowledge"]["breached"] is True  # acknowledged after its due time: stays breached
    assert _at(assigned["sla_due_at"]) == _at(assigned["sla"]["triage"]["due_at"])  # triage is next due

    working = _patch(soc, case_id, status="in_progress")
    assert working["triaged_at"] is not None and working["sla"]["triage"]["breached"] is False
    assert working["acknowledged_at"] == assigned["acknowledged_at"]
    assert _at(working["sla_due_at"]) == _at(working["sla"]["resolve"]["due_at"])

    resolved = _patch(soc, case_id, status="resolved", resolution="true_positive")
    assert resolved["resolved_at"] is not None and resolved["sla_due_at"] is None
    assert resolved["sla"]["resolve"]["breached"] is False
    closed = _patch(soc, case_id, status="closed", resolution="true_positive")
    assert closed["resolved_at"] == resolved["resolved_at"]  # resolving stopped the clock, closing keeps it

    # Closing a new case at once stops all three clocks.
    dismissed = _case(soc, make_alert, user="carol", level="high")
    done = _patch(soc, dismissed["id"], status="closed", resolution="false_positive")
    assert done["acknowledged_at"] == done["triaged_at"] == done["resolved_at"] == done["closed_at"]


def test_awaiting_the_member_pauses_the_clocks(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    soc.add_tenant(NG)
    case = _case(soc, make_alert, level="high")
    case_id = case["id"]
    other = _case(soc, make_alert, user="bob", level="low")
    waiting = _patch(soc, case_id, status="awaiting_member")
    assert waiting["sla"]["paused"] is True and waiting["sla_due_at"] is None
    assert waiting["triaged_at"] is not None  # sending it to the member is a triage decision
    # A paused case waits at the end of the queue, after a low one whose clocks run.
    assert [c["id"] for c in _queue(soc)] == [other["id"], case_id]
    # While paused, the due time shown is the one the case would have if it resumed now.
    assert _at(waiting["sla"]["resolve"]["due_at"]) > _at(case["created_at"]) + timedelta(days=1)  # type: ignore[operator]

    # Two hours waiting on the member: the resolve due time moves by the two hours.
    _age(app, case_id, timedelta(hours=2), "acknowledged_at", "triaged_at", "sla_paused_since")
    resumed = _patch(soc, case_id, status="in_progress")
    assert resumed["sla"]["paused"] is False
    with app.state.session_factory() as session:
        stored = session.get(Case, case_id)
        assert stored is not None and stored.sla_paused_since is None
        [(start, end)] = stored.sla_pauses
    pause = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    assert timedelta(hours=2) <= pause < timedelta(hours=2, minutes=1)
    created = _at(resumed["created_at"])
    assert _at(resumed["sla"]["resolve"]["due_at"]) == created + timedelta(days=1) + pause  # type: ignore[operator]
    assert _at(resumed["sla_due_at"]) == _at(resumed["sla"]["resolve"]["due_at"])

    # Reopening a resolved case: the time it spent resolved does not count either.
    _patch(soc, case_id, status="resolved", resolution="benign")
    reopened = _patch(soc, case_id, status="in_progress")
    assert reopened["resolved_at"] is None and reopened["sla_due_at"] is not None
    with app.state.session_factory() as session:
        stored = session.get(Case, case_id)
        assert stored is not None and len(stored.sla_pauses) == 2


def test_queue_is_ordered_by_due_time_then_severity(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    # The school's contract gives even critical cases two days to be acknowledged.
    relaxed = {s: {"acknowledge": "2d", "triage": "3d", "resolve": "10d"} for s in TARGETS}
    assert _contract(soc, RS, {"targets": relaxed}).status_code == 200
    school_critical = _case(soc, make_alert, RS, user="sc", level="critical")
    hospital_medium = _case(soc, make_alert, NG, user="hm", level="medium")
    hospital_low = _case(soc, make_alert, NG, user="hl", level="low")
    order = [c["id"] for c in _queue(soc)]
    assert order == [hospital_medium["id"], hospital_low["id"], school_critical["id"]]  # 4 h, 1 d, 2 d
    # Equal due times: the more severe case first.
    same = {s: {"acknowledge": "1h", "triage": "2h", "resolve": "1d"} for s in TARGETS}
    with app.state.session_factory() as session:
        opened = session.get(Case, hospital_medium["id"]).created_at  # type: ignore[union-attr]
        for case_id in (hospital_low["id"], school_critical["id"]):
            session.get(Case, case_id).created_at = opened  # type: ignore[union-attr]
        session.commit()
    for tenant in (NG, RS):
        assert _contract(soc, tenant, {"targets": same}).status_code == 200
    queue = _queue(soc)
    assert len({c["sla_due_at"] for c in queue}) == 1
    assert [c["severity"] for c in queue] == ["critical", "medium", "low"]
    # The API's queue and the member's view of it follow the same order.
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    assert [c["id"] for c in _queue(soc, viewer)] == [hospital_medium["id"], hospital_low["id"]]


def test_a_business_hours_contract_sets_the_due_times_of_open_cases(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case = _case(soc, make_alert, level="high")
    response = _contract(soc, NG, {"calendar": BUSINESS, "targets": TARGETS})
    assert response.status_code == 200, response.text
    assert response.json()["default"] is False and response.json()["updated_by"] == "test-admin"
    again = soc.case(case["id"])
    office = BusinessHours(ZoneInfo("Europe/London"),
                           {day: [(time(9), time(17))] for day in list(Weekday)[:5]},
                           holidays=[datetime(2026, 12, 25).date()])
    created = _at(again["created_at"])
    assert created is not None
    assert again["sla"]["calendar"] == "business hours (Europe/London)" and again["sla"]["contract"] == "tenant"
    assert _at(again["sla"]["acknowledge"]["due_at"]) == office.add(created, timedelta(hours=1))
    assert _at(again["sla"]["resolve"]["due_at"]) == office.add(created, timedelta(days=1))
    assert _at(again["sla_due_at"]) == office.add(created, timedelta(hours=1))  # stored when the contract changed
    assert again["version"] == case["version"]  # new due times are not a change an If-Match should trip on
    # Back to the default contract.
    reset = soc.client.delete(f"/api/v1/tenants/{NG}/contract", headers=soc.admin)
    assert reset.status_code == 200 and reset.json()["default"] is True
    assert _at(soc.case(case["id"])["sla_due_at"]) == created + timedelta(hours=1)
    # Both changes are in the audit log, with the contract before and after.
    audit = soc.client.get("/api/v1/audit", params={"tenant": NG}, headers=soc.admin).json()
    changes = [entry["detail"] for entry in audit if entry["action"] == "tenant.contract_changed"]
    assert sorted((c["from"] is None, c["to"] is None) for c in changes) == [(False, True), (True, False)]


def test_who_may_read_and_set_a_contract(soc: SocApi) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    url = f"/api/v1/tenants/{NG}/contract"
    for role in (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST):
        answer = soc.client.get(url, headers=soc.headers(role))
        assert answer.status_code == 200 and answer.json()["default"] is True
    for role in (Role.TENANT_RESPONDER, Role.TENANT_VIEWER):
        own = soc.headers(role, tenant=NG)
        assert soc.client.get(url, headers=own).status_code == 200
        other = soc.client.get(f"/api/v1/tenants/{RS}/contract", headers=own)
        missing = soc.client.get("/api/v1/tenants/no-such-member/contract", headers=own)
        assert other.status_code == missing.status_code == 404
        assert other.json()["detail"] == f"tenant {RS!r} not found"
        assert _contract(soc, NG, {"targets": TARGETS}, headers=own).status_code == 403
    for role in (Role.SERVICE, Role.RULE_AUTHOR):
        assert soc.client.get(url, headers=soc.headers(role)).status_code == 403
    for role in (Role.SOC_LEAD, Role.SOC_ANALYST):
        assert _contract(soc, NG, {"targets": TARGETS}, headers=soc.headers(role)).status_code == 403
        assert soc.client.delete(url, headers=soc.headers(role)).status_code == 403
    assert _contract(soc, "no-such-member", {"targets": TARGETS}).status_code == 404


def test_a_bad_contract_is_refused_with_advice(soc: SocApi) -> None:
    soc.add_tenant(NG)
    bad = [
        ({"targets": {k: v for k, v in TARGETS.items() if k != "low"}}, "missing for severity low"),
        ({"targets": {**TARGETS, "low": {"acknowledge": "1x", "triage": "1h", "resolve": "1d"}}}, "not a duration"),
        ({"calendar": {**BUSINESS, "timezone": "Europe/Atlantis"}, "targets": TARGETS}, "unknown time zone"),
        ({"calendar": {**BUSINESS, "hours": {"mon": "17:00-09:00"}}, "targets": TARGETS}, "closes before it opens"),
        ({"calendar": {**BUSINESS, "timezone": "Europe/Lon\x00don"}, "targets": TARGETS}, "NUL"),
        ({"targets": TARGETS, "escalate_to": "the mayor"}, "Extra inputs"),
    ]
    for document, advice in bad:
        response = _contract(soc, NG, document)
        assert response.status_code == 422 and advice in response.text, response.text
    assert soc.client.get(f"/api/v1/tenants/{NG}/contract", headers=soc.admin).json()["default"] is True


def test_merged_cases_stop_their_clocks(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    target = _case(soc, make_alert, user="alice", level="medium")
    source = _case(soc, make_alert, user="bob", level="critical")
    response = soc.client.post(f"/api/v1/cases/{target['id']}/merge", json={"sources": [source["id"]]},
                               headers=soc.analyst)
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["severity"] == "critical" and merged["acknowledged_at"] is not None
    assert _at(merged["sla_due_at"]) == _at(merged["created_at"]) + timedelta(hours=1)  # type: ignore[operator]
    closed = soc.case(source["id"])
    assert closed["resolved_at"] == closed["closed_at"] and closed["sla_due_at"] is None
