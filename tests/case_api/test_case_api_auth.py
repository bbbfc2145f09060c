"""Authentication by API key, key management and role checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from sqlalchemy import Engine, select

from case_api.auth.models import ApiKey, Role

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi


def test_health_needs_no_key(client: httpx.Client) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_and_docs_are_published(client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/cases", "/api/v1/alerts", "/api/v1/tenants", "/api/v1/keys"} <= set(spec["paths"])
    assert client.get("/api/v1/docs").status_code == 200


def test_missing_key_is_401_with_a_json_message(client: httpx.Client) -> None:
    response = client.get("/api/v1/cases")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_key_is_401(client: httpx.Client) -> None:
    for headers in (
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        response = client.get("/api/v1/cases", headers=headers)
        assert response.status_code == 401, headers
        assert isinstance(response.json()["detail"], str)


def test_bearer_and_x_api_key_headers_both_authenticate(soc: SocApi) -> None:
    secret = soc.analyst["Authorization"].removeprefix("Bearer ")
    assert soc.client.get("/api/v1/cases", headers=soc.analyst).status_code == 200
    assert soc.client.get("/api/v1/cases", headers={"X-API-Key": secret}).status_code == 200


def test_admin_creates_a_key_whose_secret_is_shown_once_and_never_stored(soc: SocApi, clean_db: Engine) -> None:
    soc.add_tenant("northgate-hospital")
    response = soc.client.post(
        "/api/v1/keys",
        json={"name": "ng-viewer", "role": "tenant_viewer", "tenant_id": "northgate-hospital"},
        headers=soc.admin,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert created["prefix"] == secret[:8]
    assert created["role"] == "tenant_viewer"

    with clean_db.connect() as connection:
        stored = connection.execute(select(ApiKey.key_hash).where(ApiKey.name == "ng-viewer")).one()
    assert secret not in stored.key_hash
    listed = soc.client.get("/api/v1/keys", headers=soc.admin).json()
    assert all("secret" not in key for key in listed)
    assert soc.client.get("/api/v1/tenants", headers={"X-API-Key": secret}).status_code == 200


def test_revoked_key_is_rejected(soc: SocApi) -> None:
    created = soc.client.post("/api/v1/keys", json={"name": "temp", "role": "soc_analyst"}, headers=soc.admin).json()
    headers = {"Authorization": f"Bearer {created['secret']}"}
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200
    revoke = soc.client.delete(f"/api/v1/keys/{created['id']}", headers=soc.admin)
    assert revoke.status_code == 204
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 401


def test_tenant_role_key_needs_a_registered_tenant(soc: SocApi) -> None:
    no_tenant = soc.client.post("/api/v1/keys", json={"name": "x", "role": "tenant_responder"}, headers=soc.admin)
    assert no_tenant.status_code == 422
    assert "tenant_id" in no_tenant.json()["detail"]

    unknown = soc.client.post(
        "/api/v1/keys",
        json={"name": "x", "role": "tenant_responder", "tenant_id": "nowhere-school"},
        headers=soc.admin,
    )
    assert unknown.status_code == 422
    assert "nowhere-school" in unknown.json()["detail"]

    city_role_with_tenant = soc.client.post(
        "/api/v1/keys",
        json={"name": "x", "role": "soc_analyst", "tenant_id": "nowhere-school"},
        headers=soc.admin,
    )
    assert city_role_with_tenant.status_code == 422


def test_only_admin_manages_keys(soc: SocApi) -> None:
    body = {"name": "sneaky", "role": "admin"}
    for headers in (soc.analyst, soc.service, soc.headers(Role.SOC_LEAD)):
        response = soc.client.post("/api/v1/keys", json=body, headers=headers)
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]
