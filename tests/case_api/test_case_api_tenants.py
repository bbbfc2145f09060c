"""Tenant registration and who sees which tenants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from case_api.auth.models import Role

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi


def test_admin_registers_a_tenant(soc: SocApi) -> None:
    response = soc.client.post(
        "/api/v1/tenants",
        json={"id": "northgate-hospital", "name": "Northgate Hospital"},
        headers=soc.admin,
    )
    assert response.status_code == 201
    assert response.json()["name"] == "Northgate Hospital"


def test_duplicate_tenant_is_409(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    response = soc.client.post("/api/v1/tenants", json={"id": "northgate-hospital", "name": "Again"}, headers=soc.admin)
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_tenant_id_must_be_a_slug(soc: SocApi) -> None:
    for bad in ("Northgate", "-leading-dash", "a", "under_score", "x" * 64):
        response = soc.client.post("/api/v1/tenants", json={"id": bad, "name": "n"}, headers=soc.admin)
        assert response.status_code == 422, bad
        assert "id" in response.json()["detail"]


def test_only_admin_registers_tenants(soc: SocApi) -> None:
    response = soc.client.post("/api/v1/tenants", json={"id": "new-school", "name": "n"}, headers=soc.analyst)
    assert response.status_code == 403


def test_city_roles_list_every_tenant_and_tenant_users_only_their_own(soc: SocApi) -> None:
    soc.add_tenant("northgate-hospital")
    soc.add_tenant("riverside-school")
    everyone = {"northgate-hospital", "riverside-school"}
    for headers in (soc.admin, soc.analyst, soc.headers(Role.SOC_LEAD)):
        listed = soc.client.get("/api/v1/tenants", headers=headers).json()
        assert {t["id"] for t in listed} == everyone

    viewer = soc.headers(Role.TENANT_VIEWER, tenant="riverside-school")
    listed = soc.client.get("/api/v1/tenants", headers=viewer).json()
    assert [t["id"] for t in listed] == ["riverside-school"]
