"""Working a case: resolution, severity and priority, known assignees, comments, tasks from playbooks,
observables with TLP, ATT&CK techniques, merge and bulk actions; every change in the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from case_api.auth.models import Role
from citysoc.playbooks import load_playbooks

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"


def _case(soc: SocApi, make_alert: MakeAlert, tenant: str = NG, **kwargs: Any) -> int:
    [case_id] = soc.ingest(make_alert(tenant, **kwargs))["cases"]
    return int(case_id)


def _actions(soc: SocApi, case_id: int) -> list[str]:
    events = soc.client.get(f"/api/v1/cases/{case_id}/events", params={"limit": 1000}, headers=soc.analyst).json()
    return [e["action"] for e in events]


def test_closing_needs_a_resolution_which_is_kept_and_audited(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_id = _case(soc, make_alert)
    url = f"/api/v1/cases/{case_id}"
    refused = soc.client.patch(url, json={"status": "closed"}, headers=soc.analyst)
    assert refused.status_code == 422 and "resolution" in refused.json()["detail"]
    maybe = soc.client.patch(url, json={"status": "closed", "resolution": "maybe"}, headers=soc.analyst)
    assert maybe.status_code == 422
    closed = soc.client.patch(url, json={"status": "closed", "resolution": "false_positive"}, headers=soc.analyst)
    assert closed.status_code == 200
    case = closed.json()
    assert (case["status"], case["resolution"]) == ("closed", "false_positive")
    assert case["closed_at"] is not None
    [change] = [e for e in case["events"] if e["action"] == "status_changed"]
    assert change["detail"] == {"from": "new", "to": "closed", "resolution": "false_positive"}


def test_priority_is_severity_against_the_tenants_asset_criticality(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    response = soc.client.post("/api/v1/tenants", json={"id": RS, "name": "Riverside", "asset_criticality": "low"},
                               headers=soc.admin)
    assert response.status_code == 201
    ng_case = _case(soc, make_alert, NG, level="high")
    rs_case = _case(soc, make_alert, RS, level="high")
    assert soc.case(ng_case)["priority"] == "P2"  # high on medium-criticality assets
    assert soc.case(rs_case)["priority"] == "P3"
    assert soc.client.patch(f"/api/v1/tenants/{NG}", json={"asset_criticality": "critical"},
                            headers=soc.admin).status_code == 200
    assert soc.case(ng_case)["priority"] == "P1"
    assert soc.client.patch(f"/api/v1/tenants/{NG}", json={"asset_criticality": "x"},
                            headers=soc.admin).status_code == 422
    assert soc.client.patch(f"/api/v1/tenants/{NG}", json={"asset_criticality": "low"},
                            headers=soc.analyst).status_code == 403

    lowered = soc.client.patch(f"/api/v1/cases/{rs_case}", json={"severity": "low"}, headers=soc.analyst).json()
    assert (lowered["severity"], lowered["priority"]) == ("low", "P4")
    assert [e["detail"] for e in lowered["events"] if e["action"] == "severity_changed"] == [
        {"from": "high", "to": "low"}]
    queue = soc.client.get("/api/v1/cases", headers=soc.analyst).json()
    assert [c["id"] for c in queue] == [ng_case, rs_case]


def test_assignee_is_a_known_user_who_may_work_the_case(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    case_id = _case(soc, make_alert)
    soc.headers(Role.TENANT_RESPONDER, tenant=NG, name="ng-nurse")
    soc.headers(Role.TENANT_RESPONDER, tenant=RS, name="rs-teacher")
    soc.headers(Role.TENANT_VIEWER, tenant=NG, name="ng-viewer")
    url = f"/api/v1/cases/{case_id}"
    for name in ("nobody", "rs-teacher", "ng-viewer"):
        refused = soc.client.patch(url, json={"assignee": name}, headers=soc.analyst)
        assert refused.status_code == 422, name
        assert "unknown assignee" in refused.json()["detail"]
    assert soc.client.patch(url, json={"assignee": "ng-nurse"}, headers=soc.analyst).json()["assignee"] == "ng-nurse"


def test_comments_are_kept_in_order_audited_and_scoped(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    case_id = _case(soc, make_alert)
    url = f"/api/v1/cases/{case_id}/comments"
    for body in ("Called the ward manager", "Password reset done"):
        created = soc.client.post(url, json={"body": body}, headers=soc.analyst)
        assert created.status_code == 201
        assert created.json()["author"] == "test-soc_analyst"
    assert [c["body"] for c in soc.client.get(url, headers=soc.analyst).json()] == [
        "Called the ward manager", "Password reset done"]
    assert _actions(soc, case_id).count("commented") == 2
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    assert len(soc.client.get(url, headers=viewer).json()) == 2
    assert soc.client.post(url, json={"body": "x"}, headers=viewer).status_code == 403
    other = soc.headers(Role.TENANT_RESPONDER, tenant=RS)
    assert soc.client.get(url, headers=other).status_code == 404
    assert soc.client.post(url, json={"body": "x"}, headers=other).status_code == 404
    assert soc.client.post(url, json={"body": ""}, headers=soc.analyst).status_code == 422


def test_alerts_give_the_case_techniques_observables_and_playbook_tasks(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_id = _case(soc, make_alert, entities={"user.name": ["christophe"], "cloud.account.id": ["143434273843"],
                                                 "source.ip": ["86.245.153.234"], "user.email": ["c@ng.example"],
                                                 "source.domain": ["vpn.ng.example"],
                                                 "user_agent.original": ["aws-cli/2.15"]})
    case = soc.case(case_id)
    assert case["techniques"] == ["T1562.008"]
    observables = soc.client.get(f"/api/v1/cases/{case_id}/observables", headers=soc.analyst).json()
    assert {(o["kind"], o["value"], o["tlp"], o["source"]) for o in observables} == {
        ("user", "christophe", "amber", "alert"), ("cloud_account", "143434273843", "amber", "alert"),
        ("ip", "86.245.153.234", "amber", "alert"), ("user", "c@ng.example", "amber", "alert"),
        ("domain", "vpn.ng.example", "amber", "alert")}  # a user agent is no observable kind

    tasks = soc.client.get(f"/api/v1/cases/{case_id}/tasks", headers=soc.analyst).json()
    [playbook] = [p for p in load_playbooks() if p.matches(rule_ids=[case["alerts"][0]["rule_id"]],
                                                           tags=["attack.t1562.008"])]
    steps = [step["name"] for step in playbook.document["workflow"].values() if step["type"] == "action"]
    assert sorted(t["title"] for t in tasks) == sorted(steps) and len(steps) >= 2
    assert {t["playbook_id"] for t in tasks} == {playbook.id}
    assert all(t["status"] == "open" for t in tasks)
    soc.ingest(make_alert(NG, minutes=5))  # a second alert of the same playbook adds no twin tasks
    assert len(soc.client.get(f"/api/v1/cases/{case_id}/tasks", headers=soc.analyst).json()) == len(tasks)

    done = soc.client.patch(f"/api/v1/cases/{case_id}/tasks/{tasks[0]['id']}", json={"status": "done"},
                            headers=soc.analyst).json()
    assert (done["status"], done["done_by"]) == ("done", "test-soc_analyst")
    added = soc.client.post(f"/api/v1/cases/{case_id}/tasks", json={"title": "Ask the member for VPN logs"},
                            headers=soc.analyst)
    assert added.status_code == 201 and added.json()["playbook_id"] == ""
    red = soc.client.post(f"/api/v1/cases/{case_id}/observables",
                          json={"kind": "domain", "value": "evil.example", "tlp": "red"}, headers=soc.analyst)
    assert red.status_code == 201 and red.json()["tlp"] == "red"
    assert soc.client.post(f"/api/v1/cases/{case_id}/observables", json={"kind": "email", "value": "a@b"},
                           headers=soc.analyst).status_code == 422
    actions = _actions(soc, case_id)
    assert {"task_changed", "task_added", "observable_added"} <= set(actions)


def test_merge_moves_alerts_and_closes_the_others_as_duplicates(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    target = _case(soc, make_alert, user="alice", level="medium")
    source = _case(soc, make_alert, user="bob", level="high")
    other_tenant = _case(soc, make_alert, RS, user="carol")
    etag = soc.client.get(f"/api/v1/cases/{target}", headers=soc.analyst).headers["etag"]

    crossing = soc.client.post(f"/api/v1/cases/{target}/merge", json={"sources": [other_tenant]}, headers=soc.analyst)
    assert crossing.status_code == 422
    responder = soc.headers(Role.TENANT_RESPONDER, tenant=NG)
    assert soc.client.post(f"/api/v1/cases/{target}/merge", json={"sources": [other_tenant]},
                           headers=responder).status_code == 404

    merged = soc.client.post(f"/api/v1/cases/{target}/merge", json={"sources": [source]},
                             headers={**soc.analyst, "If-Match": etag})
    assert merged.status_code == 200, merged.text
    assert (merged.json()["alert_count"], merged.json()["severity"]) == (2, "high")
    closed = soc.case(source)
    assert (closed["status"], closed["resolution"], closed["merged_into_id"]) == ("closed", "duplicate", target)
    assert soc.client.get(f"/api/v1/cases/{source}/alerts", headers=soc.analyst).json() == []
    assert {o["value"] for o in soc.client.get(f"/api/v1/cases/{target}/observables",
                                               headers=soc.analyst).json()} >= {"alice", "bob"}
    assert "merged" in _actions(soc, target) and "merged_into" in _actions(soc, source)
    stale = soc.client.post(f"/api/v1/cases/{target}/merge", json={"sources": [source]},
                            headers={**soc.analyst, "If-Match": etag})
    assert stale.status_code == 412


def test_bulk_assign_close_and_merge_in_one_request_each(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.headers(Role.SOC_ANALYST, name="ann")
    ids = [_case(soc, make_alert, user=f"user-{n}") for n in range(4)]
    assigned = soc.client.post("/api/v1/cases/bulk", json={"action": "assign", "case_ids": [*ids, 2147483647],
                                                           "assignee": "ann"}, headers=soc.analyst)
    assert assigned.status_code == 200
    outcome = {r["case_id"]: r["ok"] for r in assigned.json()}
    assert outcome == {**dict.fromkeys(ids, True), 2147483647: False}
    assert {c["assignee"] for c in soc.client.get("/api/v1/cases", headers=soc.analyst).json()} == {"ann"}

    assert soc.client.post("/api/v1/cases/bulk", json={"action": "close", "case_ids": ids[:2]},
                           headers=soc.analyst).status_code == 422
    closing = soc.client.post("/api/v1/cases/bulk", json={"action": "close", "case_ids": ids[:2],
                                                          "resolution": "benign", "comment": "Pen test"},
                              headers=soc.analyst)
    assert [r["status"] for r in closing.json()] == ["closed", "closed"]
    assert soc.client.get(f"/api/v1/cases/{ids[0]}/comments", headers=soc.analyst).json()[0]["body"] == "Pen test"

    merging = soc.client.post("/api/v1/cases/bulk", json={"action": "merge", "case_ids": [ids[3]], "into": ids[2]},
                              headers=soc.analyst)
    assert merging.json() == [{"case_id": ids[3], "ok": True, "status": "closed", "detail": ""}]
    open_queue = soc.client.get("/api/v1/cases", params={"open": "true"}, headers=soc.analyst).json()
    assert [c["id"] for c in open_queue] == [ids[2]]
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    assert soc.client.post("/api/v1/cases/bulk", json={"action": "assign", "case_ids": ids, "assignee": None},
                           headers=viewer).status_code == 403
