"""Grouping alerts into cases, the case workflow, the audit trail and tenant isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from case_api.auth.models import Role

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"


def _cases(soc: SocApi, headers: dict[str, str] | None = None, **params: Any) -> list[dict[str, Any]]:
    response = soc.client.get("/api/v1/cases", params=params, headers=headers or soc.analyst)
    assert response.status_code == 200, response.text
    cases: list[dict[str, Any]] = response.json()
    return cases


def _patch(soc: SocApi, case_id: int, headers: dict[str, str], **body: Any) -> Any:
    """PATCH a case; closing it gives the resolution a close needs unless the test names one."""
    if body.get("status") == "closed":
        body.setdefault("resolution", "true_positive")
    return soc.client.patch(f"/api/v1/cases/{case_id}", json=body, headers=headers)


# --- grouping ------------------------------------------------------------------------------------


def test_alerts_with_one_group_key_share_a_case_with_the_max_severity(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    result = soc.ingest(
        make_alert(NG, user="christophe", level="low", minutes=0),
        make_alert(NG, user="christophe", level="high", minutes=5),
        make_alert(NG, user="christophe", level="medium", minutes=2),
    )
    assert len(result["cases"]) == 1
    case = soc.case(result["cases"][0])
    assert case["group_key"] == "user.name=christophe"
    assert case["alert_count"] == 3
    assert case["severity"] == "high"
    assert case["status"] == "new"
    assert case["first_seen"] == "2024-07-31T13:06:24Z"
    assert case["last_seen"] == "2024-07-31T13:11:24Z"
    assert case["title"] == "AWS CloudTrail Important Change (user.name=christophe)"
    assert len(case["alerts"]) == 3


def test_alerts_with_different_group_keys_open_different_cases(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    result = soc.ingest(
        make_alert(NG, user="a", group_key="user.name=a"), make_alert(NG, user="b", group_key="user.name=b")
    )
    assert len(result["cases"]) == 2
    assert {c["group_key"] for c in _cases(soc)} == {"user.name=a", "user.name=b"}


def test_same_group_key_in_two_tenants_opens_a_case_in_each(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    result = soc.ingest(make_alert(NG, user="shared"), make_alert(RS, user="shared"))
    assert len(result["cases"]) == 2
    assert {c["tenant_id"] for c in _cases(soc)} == {NG, RS}


def test_a_later_batch_joins_the_open_case_and_raises_its_severity(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    first = soc.ingest(make_alert(NG, level="medium"))
    assert soc.case(first["cases"][0])["severity"] == "medium"
    second = soc.ingest(make_alert(NG, level="critical", minutes=30))
    assert second["cases"] == first["cases"]
    case = soc.case(first["cases"][0])
    assert (case["severity"], case["alert_count"]) == ("critical", 2)


def test_a_more_severe_alert_renames_the_case_after_itself(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.ingest(make_alert(NG, user="j.harris", level="low", minutes=0, rule_title="Potential Bucket Enumeration"))
    soc.ingest(make_alert(NG, user="j.harris", level="medium", minutes=1, rule_title="Console Login Without MFA"),
               make_alert(NG, user="j.harris", level="high", minutes=2, rule_title="CloudTrail Stopped"))
    soc.ingest(make_alert(NG, user="j.harris", level="medium", minutes=3, rule_title="Later Noise"))
    [case] = _cases(soc)
    assert case["severity"] == "high"
    assert case["title"] == "CloudTrail Stopped (user.name=j.harris)"


@pytest.mark.parametrize("finished", ["closed", "resolved"])
def test_new_alert_for_a_finished_case_opens_a_new_case(soc: SocApi, make_alert: MakeAlert, finished: str) -> None:
    soc.add_tenant(NG)
    old = soc.ingest(make_alert(NG))["cases"][0]
    assert _patch(soc, old, soc.analyst, status=finished).status_code == 200

    new = soc.ingest(make_alert(NG, minutes=60))["cases"][0]
    assert new != old
    assert soc.case(old)["alert_count"] == 1
    assert soc.case(new)["alert_count"] == 1
    assert soc.case(new)["status"] == "new"
    if finished == "resolved":  # it may be reopened only while no other case of its group is open
        refused = _patch(soc, old, soc.analyst, status="in_progress")
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == (f"case {old} cannot be reopened: case {new} is already open for "
                                            f"{soc.case(old)['group_key']!r}; work that case instead")
        assert soc.case(old)["status"] == "resolved"
        assert _patch(soc, new, soc.analyst, status="resolved").status_code == 200
        reopened = _patch(soc, old, soc.analyst, status="in_progress")
        assert reopened.status_code == 200 and reopened.json()["status"] == "in_progress", reopened.text


def test_queue_on_the_default_contract_is_most_severe_then_oldest(soc: SocApi, make_alert: MakeAlert) -> None:
    # The queue is ordered by SLA due time (test_case_api_sla.py); under one contract the more severe case
    # has the shorter target, and of two equally severe cases the one opened first is due first.
    soc.add_tenant(NG)
    soc.ingest(
        # Two low alerts: enough risk for a case of their own (one would be held as risk only).
        make_alert(NG, user="low-old", level="low", minutes=0),
        make_alert(NG, user="low-old", level="low", minutes=0),
        make_alert(NG, user="high-old", level="high", minutes=1),
        make_alert(NG, user="high-new", level="high", minutes=9),
        make_alert(NG, user="crit", level="critical", minutes=2),
        make_alert(NG, user="med", level="medium", minutes=20),
    )
    order = [c["group_key"].removeprefix("user.name=") for c in _cases(soc)]
    assert order == ["crit", "high-old", "high-new", "med", "low-old"]
    assert len(_cases(soc, limit=2)) == 2
    assert [c["status"] for c in _cases(soc, status="new")] == ["new"] * 5
    assert _cases(soc, status="closed") == []


# --- workflow and audit --------------------------------------------------------------------------


def test_status_and_assignee_changes_are_audited(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_id = soc.ingest(make_alert(NG), make_alert(NG, level="high", minutes=1))["cases"][0]
    lead = soc.headers(Role.SOC_LEAD, name="lead-lucy")
    soc.headers(Role.SOC_ANALYST, name="analyst-ann")  # a known user to assign

    response = _patch(soc, case_id, lead, status="in_progress", assignee="analyst-ann")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["assignee"]) == ("in_progress", "analyst-ann")
    _patch(soc, case_id, lead, status="resolved")

    events = soc.case(case_id)["events"]
    actions = [e["action"] for e in events]
    assert actions == [
        "created",
        "alert_added",
        "alert_added",
        "status_changed",
        "assigned",
        "status_changed",
    ]
    assert events[0]["actor"] == "test-service"
    assert events[2]["detail"]["severity"] == {"from": "medium", "to": "high"}
    assert events[3] == {**events[3], "actor": "lead-lucy", "detail": {"from": "new", "to": "in_progress"}}
    assert events[4]["detail"] == {"from": None, "to": "analyst-ann"}


def test_invalid_transition_is_rejected_with_the_allowed_ones(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_id = soc.ingest(make_alert(NG))["cases"][0]
    assert _patch(soc, case_id, soc.analyst, status="closed").status_code == 200

    response = _patch(soc, case_id, soc.analyst, status="in_progress")
    assert response.status_code == 409
    assert "'closed' to 'in_progress'" in response.json()["detail"]
    assert soc.case(case_id)["status"] == "closed"
    assert [e["action"] for e in soc.case(case_id)["events"]].count("status_changed") == 1


def test_unknown_status_and_null_status_are_422(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_id = soc.ingest(make_alert(NG))["cases"][0]
    assert _patch(soc, case_id, soc.analyst, status="done").status_code == 422
    assert _patch(soc, case_id, soc.analyst, status=None).status_code == 422


def test_resolved_case_reopens_unless_its_group_has_a_newer_open_case(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    old = soc.ingest(make_alert(NG))["cases"][0]
    _patch(soc, old, soc.analyst, status="resolved")
    assert _patch(soc, old, soc.analyst, status="in_progress").status_code == 200
    _patch(soc, old, soc.analyst, status="resolved")

    new = soc.ingest(make_alert(NG, minutes=10))["cases"][0]
    response = _patch(soc, old, soc.analyst, status="in_progress")
    assert response.status_code == 409
    assert f"case {new}" in response.json()["detail"]


# --- roles and tenant isolation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.ADMIN, 200),
        (Role.SOC_LEAD, 200),
        (Role.SOC_ANALYST, 200),
        (Role.TENANT_RESPONDER, 200),
        (Role.TENANT_VIEWER, 403),
        (Role.SERVICE, 403),
        (Role.RULE_AUTHOR, 403),
    ],
)
def test_who_may_change_a_case(soc: SocApi, make_alert: MakeAlert, role: Role, status: int) -> None:
    soc.add_tenant(NG)
    case_id = soc.ingest(make_alert(NG))["cases"][0]
    headers = soc.headers(role, tenant=NG if role.is_tenant_bound else None)
    soc.headers(Role.SOC_ANALYST, name="someone")
    response = _patch(soc, case_id, headers, assignee="someone")
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail" if status != 200 else "id"], (str, int))


def test_tenant_user_never_sees_another_tenants_case(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    ng_case = soc.ingest(make_alert(NG))["cases"][0]
    rs_case = soc.ingest(make_alert(RS))["cases"][0]
    responder = soc.headers(Role.TENANT_RESPONDER, tenant=NG)
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)

    for headers in (responder, viewer):
        assert [c["id"] for c in _cases(soc, headers)] == [ng_case]
        assert _cases(soc, headers, tenant=RS) == []
        direct = soc.client.get(f"/api/v1/cases/{rs_case}", headers=headers)
        missing = soc.client.get("/api/v1/cases/999999", headers=headers)
        assert direct.status_code == missing.status_code == 404
        assert direct.json()["detail"] == f"case {rs_case} not found"
        assert soc.client.get(f"/api/v1/cases/{ng_case}", headers=headers).status_code == 200

    crossing_patch = _patch(soc, rs_case, responder, status="closed")
    assert crossing_patch.status_code == 404
    assert soc.case(rs_case)["status"] == "new"
    assert [e["action"] for e in soc.case(rs_case)["events"]] == ["created", "alert_added"]

    # Own case detail lists only own alerts, even when another tenant shares the group key.
    detail = soc.case(ng_case, headers=viewer)
    assert {a["tenant_id"] for a in detail["alerts"]} == {NG}


def test_service_and_rule_author_cannot_read_cases(soc: SocApi) -> None:
    for role in (Role.SERVICE, Role.RULE_AUTHOR):
        assert soc.client.get("/api/v1/cases", headers=soc.headers(role)).status_code == 403


def test_unknown_case_is_404(soc: SocApi) -> None:
    response = soc.client.get("/api/v1/cases/424242", headers=soc.analyst)
    assert response.status_code == 404
    assert response.json() == {"detail": "case 424242 not found"}
