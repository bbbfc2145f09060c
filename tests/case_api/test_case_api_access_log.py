"""The access log: one structured line per request, with its request id and who asked, never a secret."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from case_api.auth.models import Role

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

NG = "northgate-hospital"


def _requests(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry.get("event") == "request"]


def test_each_request_is_logged_once_with_its_id_status_duration_and_user(soc: SocApi) -> None:
    soc.add_tenant(NG)
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG, name="nina")
    with capture_logs() as logs:
        answer = soc.client.get("/api/v1/cases", headers={**soc.analyst, "X-Request-ID": "ticket-4711.a"})
        tenant_answer = soc.client.get("/api/v1/tenants", params={"limit": 5}, headers=viewer)
        anonymous = soc.client.get("/api/v1/cases")
    assert answer.headers["x-request-id"] == "ticket-4711.a"
    first, second, third = _requests(logs)
    assert {k: first[k] for k in ("request_id", "method", "path", "status", "user_id", "role", "tenant_id")} == {
        "request_id": "ticket-4711.a", "method": "GET", "path": "/api/v1/cases", "status": 200,
        "user_id": "test-soc_analyst", "role": "soc_analyst", "tenant_id": None}
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert (second["user_id"], second["tenant_id"], second["path"]) == ("nina", NG, "/api/v1/tenants")
    assert re.fullmatch(r"[0-9a-f]{32}", second["request_id"]) and second["request_id"] == \
        tenant_answer.headers["x-request-id"]
    assert (third["status"], third["user_id"]) == (401, None)
    assert third["request_id"] == anonymous.headers["x-request-id"] != second["request_id"]


def test_a_request_id_that_is_not_a_plain_token_is_replaced(soc: SocApi) -> None:
    for offered in ("x" * 129, "two words", "evil\\nlevel=error", "<script>"):
        with capture_logs() as logs:
            answer = soc.client.get("/api/v1/health", headers={"X-Request-ID": offered})
        given = answer.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", given), offered
        assert _requests(logs)[0]["request_id"] == given


def test_refusals_at_the_edge_are_logged_too(soc: SocApi) -> None:
    with capture_logs() as logs:
        too_big = soc.client.post("/api/v1/alerts", content=b"x" * (17 * 1024 * 1024), headers=soc.service)
        nul = soc.client.get("/api/v1/cases?tenant=%00", headers=soc.analyst)
    assert (too_big.status_code, nul.status_code) == (413, 422)
    assert [(e["status"], e["path"]) for e in _requests(logs)] == [(413, "/api/v1/alerts"), (422, "/api/v1/cases")]


def test_no_secret_ever_reaches_the_log(soc: SocApi) -> None:
    key = soc.client.post("/api/v1/keys", json={"name": "leaky", "role": "soc_analyst"}, headers=soc.admin).json()
    secret = key["secret"]
    admin_secret = soc.admin["Authorization"].removeprefix("Bearer ")
    wrong = secret[:-4] + "AAAA"
    with capture_logs() as logs:
        soc.client.get("/api/v1/cases", headers={"Authorization": f"Bearer {secret}"})
        soc.client.get("/api/v1/cases", headers={"X-API-Key": secret})
        soc.client.get("/api/v1/cases", params={"token": secret, "api_key": secret}, headers={"X-API-Key": secret})
        soc.client.get("/api/v1/cases", headers={"Authorization": f"Bearer {wrong}"})
        soc.client.get("/api/v1/cases", headers={"Authorization": f"Basic {wrong}"})
        made = soc.client.post("/api/v1/keys", json={"name": "more", "role": "soc_analyst"}, headers=soc.admin)
        soc.client.get("/api/v1/users", headers=soc.admin)
    new_secret = made.json()["secret"]
    assert len(_requests(logs)) == 7
    text = repr(logs)
    for value in (secret, admin_secret, wrong, new_secret):
        # not the whole secret, nor any 12-character piece of it
        assert not any(value[i : i + 12] in text for i in range(len(value) - 11)), value
    assert "authorization" not in text.lower() and "x-api-key" not in text.lower()
