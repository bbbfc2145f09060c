"""Tenants' onboarded log sources: registration, tenant scoping and who may add them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from case_api.auth.models import Role

if TYPE_CHECKING:
    from tests.case_api.conftest import Headers, SocApi


def add_source(soc: SocApi, tenant: str, name: str, *, kind: str = "syslog", datasets: list[str] | None = None,
               headers: Headers | None = None) -> dict:
    response = soc.client.post(
        "/api/v1/sources",
        json={"tenant_id": tenant, "kind": kind, "name": name, "datasets": datasets or ["system.auth"]},
        headers=headers or soc.admin,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_admin_adds_a_source_and_lists_it(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    created = add_source(soc, "northgate-hospital", "web-01 auth.log",
                         datasets=["system.syslog", "system.auth", "system.auth"])
    assert created["kind"] == "syslog"
    assert created["datasets"] == ["system.auth", "system.syslog"]  # sorted, de-duplicated
    listed = soc.client.get("/api/v1/sources", headers=soc.analyst).json()
    assert [(s["tenant_id"], s["name"]) for s in listed] == [("northgate-hospital", "web-01 auth.log")]


def test_source_names_are_unique_per_tenant(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    soc.add_tenant("riverside-school")
    add_source(soc, "northgate-hospital", "auth")
    add_source(soc, "riverside-school", "auth")  # another tenant may use the same name
    again = soc.client.post("/api/v1/sources", json={"tenant_id": "northgate-hospital", "kind": "syslog",
                                                     "name": "auth"}, headers=soc.admin)
    assert again.status_code == 409
    assert "already has a source named" in again.json()["detail"]


def test_unknown_tenant_is_refused_with_advice(soc: SocApi) -> None:
    response = soc.client.post("/api/v1/sources", json={"tenant_id": "nobody", "kind": "syslog", "name": "x"},
                               headers=soc.admin)
    assert response.status_code == 422
    assert "register it first" in response.json()["detail"]


def test_kind_and_datasets_are_validated(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    for body in ({"kind": "Sys Log"}, {"datasets": ["Bad Dataset"]}, {"extra": 1}):
        response = soc.client.post("/api/v1/sources", headers=soc.admin, json={
            "tenant_id": "northgate-hospital", "kind": "syslog", "name": "x", **body})
        assert response.status_code == 422, body


def test_tenant_users_see_only_their_own_tenants_sources(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    soc.add_tenant("riverside-school")
    add_source(soc, "northgate-hospital", "auth")
    add_source(soc, "riverside-school", "cloudtrail", kind="aws.cloudtrail", datasets=["aws.cloudtrail"])
    viewer = soc.headers(Role.TENANT_VIEWER, tenant="riverside-school")
    assert [s["name"] for s in soc.client.get("/api/v1/sources", headers=viewer).json()] == ["cloudtrail"]
    # asking for another tenant's sources discloses nothing
    other = soc.client.get("/api/v1/sources", params={"tenant": "northgate-hospital"}, headers=viewer)
    assert other.status_code == 200 and other.json() == []
    everyone = soc.client.get("/api/v1/sources", headers=soc.headers(Role.RULE_AUTHOR)).json()
    assert {s["tenant_id"] for s in everyone} == {"northgate-hospital", "riverside-school"}
    only = soc.client.get("/api/v1/sources", params={"tenant": "riverside-school"}, headers=soc.analyst).json()
    assert [s["tenant_id"] for s in only] == ["riverside-school"]


def test_tenant_responder_adds_sources_only_for_its_own_tenant(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    soc.add_tenant("riverside-school")
    responder = soc.headers(Role.TENANT_RESPONDER, tenant="riverside-school")
    add_source(soc, "riverside-school", "auth", headers=responder)
    response = soc.client.post("/api/v1/sources", json={"tenant_id": "northgate-hospital", "kind": "syslog",
                                                        "name": "auth"}, headers=responder)
    assert response.status_code == 403
    viewer = soc.headers(Role.TENANT_VIEWER, tenant="riverside-school")
    response = soc.client.post("/api/v1/sources", json={"tenant_id": "riverside-school", "kind": "syslog",
                                                        "name": "x"}, headers=viewer)
    assert response.status_code == 403


def test_sources_need_an_api_key(soc: SocApi) -> None:
    assert soc.client.get("/api/v1/sources").status_code == 401
