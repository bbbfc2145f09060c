"""Bad and hostile input at the edge: bounded ids, offsets, bodies and fields, NUL characters, alert ids
shared by two tenants, paged case details, the declared security scheme, headers, local docs assets,
private data files and a revoked bootstrap key."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.bootstrap import ensure_bootstrap_keys
from case_api.settings import Settings
from tests.case_api.conftest import http_client

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"


@pytest.mark.parametrize("path", [
    "/api/v1/cases/2147483648",
    "/api/v1/cases/9223372036854775808",
    "/api/v1/cases/-1",
    "/api/v1/cases/2147483648/alerts",
    "/api/v1/sources/9223372036854775808",
    "/api/v1/sources/2147483648/health",
    "/api/v1/cases?offset=9223372036854775808",
    "/api/v1/alerts?offset=10000001",
    "/api/v1/alerts?case_id=2147483648",
    "/api/v1/sources/audit?source_id=9223372036854775808",
    "/api/v1/cases/1?alerts_offset=9223372036854775808",
    "/api/v1/campaigns?offset=9223372036854775808",
    "/api/v1/campaigns?limit=1001",
    "/api/v1/audit?limit=1001",
])
def test_ids_and_offsets_past_their_bounds_are_422(soc: SocApi, path: str) -> None:
    response = soc.client.get(path, headers=soc.admin)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("invalid request:")


def test_largest_id_and_offset_are_answered_normally(soc: SocApi) -> None:
    assert soc.client.get("/api/v1/cases/2147483647", headers=soc.admin).status_code == 404
    assert soc.client.get("/api/v1/cases?offset=10000000", headers=soc.admin).json() == []
    assert soc.client.delete("/api/v1/keys/9223372036854775808", headers=soc.admin).status_code == 422


def test_one_alert_with_a_nul_byte_is_rejected_alone_and_the_batch_lands(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    in_title = make_alert(NG, rule_title="Sudo\x00 to root")
    in_extra = make_alert(NG, process={"command_line": "curl x\x00y"})
    in_entity = make_alert(RS, user="bob\x00")
    good = [make_alert(NG, user="christophe"), make_alert(RS, user="dana")]
    response = soc.post_alerts(good[0], in_title, in_extra, good[1], in_entity)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["created"] == 2
    assert [(r["index"], r["id"]) for r in answer["rejected"]] == [
        (1, in_title["id"]), (2, in_extra["id"]), (4, in_entity["id"])]
    assert all("NUL" in r["reason"] for r in answer["rejected"])
    assert "process.command_line" in answer["rejected"][1]["reason"]
    stored = soc.client.get("/api/v1/alerts", headers=soc.analyst).json()
    assert sorted(a["id"] for a in stored) == sorted(a["id"] for a in good)
    assert {c["tenant_id"] for c in soc.client.get("/api/v1/cases", headers=soc.analyst).json()} == {NG, RS}


def test_nul_in_a_query_or_a_body_is_422(soc: SocApi) -> None:
    assert soc.client.get("/api/v1/cases", params={"tenant": "a\x00b"}, headers=soc.analyst).status_code == 422
    assert soc.client.get("/api/v1/deadletters?source=x%00", headers=soc.analyst).status_code == 422
    response = soc.client.post("/api/v1/tenants", json={"id": "nul-town", "name": "Nul\x00Town"}, headers=soc.admin)
    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]
    assert soc.client.get("/api/v1/tenants", headers=soc.admin).json() == []


def test_a_twenty_megabyte_body_is_413_and_a_huge_field_rejects_its_alert_only(
    soc: SocApi, make_alert: MakeAlert
) -> None:
    soc.add_tenant(NG)
    huge = make_alert(NG, message="A" * (20 * 1024 * 1024))
    response = soc.post_alerts(huge)
    assert response.status_code == 413
    assert "request body larger than" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"alerts": [{"message": "'
        for _ in range(20):
            yield b"A" * (1024 * 1024)
        yield b'"}]}'

    streamed = soc.client.post("/api/v1/alerts", content=chunks(), headers=soc.service)
    assert streamed.status_code == 413

    big = make_alert(NG, message="A" * (1024 * 1024))
    good = make_alert(NG)
    answer = soc.post_alerts(big, good).json()
    assert answer["created"] == 1
    assert "message: string of 1,048,576 characters, at most 32,768" in answer["rejected"][0]["reason"]
    too_many_values = make_alert(NG, entities={"user.name": [f"u{i}" for i in range(101)]})
    long_value = make_alert(NG, entities={"host.name": ["h" * 2000]})
    answer = soc.post_alerts(too_many_values, long_value, make_alert(NG)).json()
    assert [r["index"] for r in answer["rejected"]] == [0, 1]


def test_colliding_alert_ids_of_two_tenants_both_land(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    first = soc.ingest(make_alert(NG, alert_id="same-id", user="christophe"))
    second = soc.ingest(make_alert(RS, alert_id="same-id", user="dana"))
    assert (first["created"], second["created"]) == (1, 1)
    replay = soc.ingest(make_alert(RS, alert_id="same-id", user="dana"))
    assert (replay["created"], replay["duplicates"]) == (0, 1)
    for tenant, user in ((NG, "christophe"), (RS, "dana")):
        responder = soc.headers(Role.TENANT_RESPONDER, tenant=tenant)
        [alert] = soc.client.get("/api/v1/alerts", headers=responder).json()
        assert (alert["id"], alert["tenant_id"], alert["entities"]["user.name"]) == ("same-id", tenant, [user])
        [case] = soc.client.get("/api/v1/cases", headers=responder).json()
        assert case["alert_count"] == 1


def test_case_detail_pages_its_alerts_and_audit_trail(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.ingest(*[make_alert(NG, user="christophe", minutes=i) for i in range(250)])
    [case] = soc.client.get("/api/v1/cases", headers=soc.analyst).json()
    detail = soc.case(case["id"])
    assert detail["alert_count"] == 250
    assert len(detail["alerts"]) == 100 and len(detail["events"]) == 100
    assert len(soc.client.get(f"/api/v1/cases/{case['id']}", params={"alerts_limit": 1001},
                              headers=soc.analyst).json()["detail"]) > 0
    seen: list[str] = []
    for offset in range(0, 300, 100):
        page = soc.client.get(f"/api/v1/cases/{case['id']}/alerts", params={"offset": offset},
                              headers=soc.analyst).json()
        seen += [a["id"] for a in page]
    assert len(seen) == len(set(seen)) == 250
    events = soc.client.get(f"/api/v1/cases/{case['id']}/events", params={"offset": 200, "limit": 1000},
                            headers=soc.analyst).json()
    assert len(events) == 251 - 200  # created + 250 alert_added


def test_openapi_declares_the_security_schemes_and_every_data_operation_uses_them(client: httpx.Client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": "API key, or an OpenID Connect access token (JWT) when configured"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/api/v1/health":
                continue
            assert {"bearer": []} in operation.get("security", []), f"{method.upper()} {path}"


def test_security_headers_on_answers_and_errors(soc: SocApi) -> None:
    for response in (soc.client.get("/api/v1/cases", headers=soc.analyst), soc.client.get("/api/v1/cases"),
                     soc.client.get("/api/v1/cases/2147483648", headers=soc.analyst)):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_console_pages_keep_the_referrer_on_this_site(client: httpx.Client) -> None:
    """Under ``no-referrer`` a browser posts the console's forms with ``Origin: null`` (refused as cross-site)."""
    page = client.get("/console/login")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "same-origin"
    assert client.get("/api/v1/health").headers["referrer-policy"] == "no-referrer"


def test_docs_page_loads_its_assets_from_this_server(client: httpx.Client) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = client.get(f"/api/v1/docs/static/{asset}")
        assert response.status_code == 200 and len(response.content) > 100_000
        assert f"/api/v1/docs/static/{asset}" in page.text
    assert "SwaggerUIBundle" in client.get("/api/v1/docs/static/swagger-ui-bundle.js").text


def test_data_home_and_case_database_are_owner_only(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path / "home")
    app = create_app(settings)
    app.state.engine.dispose()
    ensure_bootstrap_keys(settings)
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.home / "cases.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secrets_path.stat().st_mode) == 0o600


def test_revoked_bootstrap_key_stays_revoked_and_the_next_start_neither_crashes_nor_logs_it(
    settings: Settings,
) -> None:
    old = ensure_bootstrap_keys(settings)
    app = create_app(settings)
    try:
        with http_client(app) as http:
            admin = {"Authorization": f"Bearer {old['admin']}"}
            keys = http.get("/api/v1/keys", headers=admin).json()
            analyst_key = next(k for k in keys if k["name"] == "bootstrap-analyst")
            assert http.delete(f"/api/v1/keys/{analyst_key['id']}", headers=admin).status_code == 204

        with capture_logs() as logs:
            new = ensure_bootstrap_keys(settings)  # what `soc api` does on its next start
            again = ensure_bootstrap_keys(settings)
        assert new == again
        assert new["admin"] == old["admin"] and new["service"] == old["service"]
        assert new["soc_analyst"] != old["soc_analyst"]
        assert not any(old["soc_analyst"][i : i + 6] in repr(entry) for entry in logs for i in range(0, 40))

        with http_client(app) as http:
            assert http.get("/api/v1/cases", headers={"X-API-Key": old["soc_analyst"]}).status_code == 401
            assert http.get("/api/v1/cases", headers={"X-API-Key": new["soc_analyst"]}).status_code == 200
    finally:
        app.state.engine.dispose()


def test_overlong_credentials_are_refused_without_error(app: FastAPI) -> None:
    with http_client(app) as http:
        assert http.get("/api/v1/cases", headers={"X-API-Key": "k" * 100_000}).status_code == 401
