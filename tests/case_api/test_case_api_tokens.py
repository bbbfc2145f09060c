"""OpenID Connect bearer tokens: RSA and EC keys made here, their JWKS served by a local HTTP server or read
from a file; claims become the user, role and tenant; anything not signed, not meant for us or expired is 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from structlog.testing import capture_logs

from case_api.app import create_app
from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.service import create_api_key
from case_api.settings import Settings
from tests.case_api.conftest import http_client

ISSUER = "https://idp.city.example/realms/soc"
AUDIENCE = "citysoc-case-api"
NG = "northgate-hospital"


class Keys:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                         {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"}]}

    def token(self, *, key: Any = None, kid: str = "rsa-1", algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "0b6f", "iat": now, "exp": now + 300,
                   "preferred_username": "ann", "citysoc_role": "soc_analyst", **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key if key is not None else self.rsa, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def jwks_url(keys: Keys) -> Iterator[str]:
    body = json.dumps(keys.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/soc/protocol/openid-connect/certs"
    server.shutdown()
    server.server_close()


def _app(settings: Settings, **oidc: Any) -> FastAPI:
    configured = settings.model_copy(update={"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, **oidc})
    return create_app(configured)


@pytest.fixture
def oidc_app(settings: Settings, jwks_url: str) -> Iterator[FastAPI]:
    app = _app(settings, oidc_jwks_url=jwks_url)
    with app.state.session_factory() as session:
        _, secret = create_api_key(session=session, key_in=ApiKeyIn(name="test-admin", role=Role.ADMIN))
    app.state.admin_secret = secret
    yield app
    app.state.engine.dispose()


def _get(http: httpx.Client, token: str, path: str = "/api/v1/tenants") -> httpx.Response:
    return http.get(path, headers={"Authorization": f"Bearer {token}"})


def _admin(app: FastAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.admin_secret}"}


def test_a_valid_token_acts_as_its_user_who_is_provisioned_once_and_audited(oidc_app: FastAPI, keys: Keys) -> None:
    with http_client(oidc_app) as http:
        assert http.post("/api/v1/tenants", json={"id": NG, "name": "NG"}, headers=_admin(oidc_app)).status_code == 201
        for _ in range(3):
            answer = _get(http, keys.token(name="Ann Analyst"))
            assert answer.status_code == 200, answer.text
        assert _get(http, keys.token(key=keys.ec, kid="ec-1", algorithm="ES256")).status_code == 200
        users = {u["id"]: u for u in http.get("/api/v1/users", headers=_admin(oidc_app)).json()}
        assert (users["ann"]["role"], users["ann"]["display_name"]) == ("soc_analyst", "Ann Analyst")

        # the provider makes Ann a lead: her record follows, once
        assert _get(http, keys.token(citysoc_role=["offline_access", "soc_lead"]), "/api/v1/audit").status_code == 200
        assert _get(http, keys.token(citysoc_role="soc_lead"), "/api/v1/audit").status_code == 200
        log = http.get("/api/v1/audit", params={"target_type": "user", "target_id": "ann"},
                       headers=_admin(oidc_app)).json()
        assert [(e["action"], e["actor"]) for e in log] == [("user.changed", "ann"), ("user.provisioned", "ann")]
        assert log[0]["detail"]["role"] == {"from": "soc_analyst", "to": "soc_lead"}


def test_tenant_roles_come_with_a_registered_tenant_and_see_only_it(oidc_app: FastAPI, keys: Keys) -> None:
    with http_client(oidc_app) as http:
        for tenant in (NG, "riverside-school"):
            http.post("/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=_admin(oidc_app))
        nurse = keys.token(preferred_username="nina@ng.example", citysoc_role="tenant_viewer", citysoc_tenant=NG)
        assert [t["id"] for t in _get(http, nurse).json()] == [NG]
        for tenant in (None, "nowhere-school", "../x"):
            refused = _get(http, keys.token(preferred_username="x", citysoc_role="tenant_viewer",
                                            citysoc_tenant=tenant))
            assert refused.status_code == 401 and "citysoc_tenant" in refused.json()["detail"]


@pytest.mark.parametrize(("claims", "reason"), [
    ({"aud": "another-app"}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"exp": None}, "exp"),
    ({"citysoc_role": "superuser"}, "exactly one role"),
    ({"citysoc_role": ["admin", "soc_analyst"]}, "exactly one role"),
    ({"preferred_username": "ann smith"}, "valid user id"),
    ({"preferred_username": None}, "valid user id"),
])
def test_a_token_not_for_us_is_refused_with_the_reason(oidc_app: FastAPI, keys: Keys, claims: dict[str, Any],
                                                       reason: str) -> None:
    with http_client(oidc_app) as http:
        refused = _get(http, keys.token(**claims))
    assert refused.status_code == 401
    assert reason in refused.json()["detail"].lower() or reason in refused.json()["detail"]


def test_forged_tokens_are_refused(oidc_app: FastAPI, keys: Keys) -> None:
    public_pem = keys.rsa.public_key().public_bytes(encoding=Encoding.PEM, format=PublicFormat.SubjectPublicKeyInfo)
    genuine = keys.token()
    header, _payload, signature = genuine.split(".")
    forged = {
        "signed by a stranger's key under our kid": keys.token(key=keys.stranger),
        "unknown kid": keys.token(key=keys.stranger, kid="rsa-9"),
        "alg none": jwt.encode(jwt.decode(genuine, options={"verify_signature": False}), None, algorithm="none",
                               headers={"kid": "rsa-1"}),
        "HS256 with the public key as secret": _hs256(genuine, public_pem),
        "payload swapped": f"{header}.{keys.token(citysoc_role='admin').split('.')[1]}.{signature}",
    }
    with http_client(oidc_app) as http:
        for what, token in forged.items():
            assert _get(http, token).status_code == 401, what
        assert _get(http, genuine).status_code == 200


def _hs256(token: str, secret: bytes) -> str:
    """The token re-signed with HMAC under ``secret``: the algorithm-confusion forgery."""
    claims = jwt.decode(token, options={"verify_signature": False})
    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(secret, head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def test_a_disabled_users_tokens_are_refused(oidc_app: FastAPI, keys: Keys) -> None:
    with http_client(oidc_app) as http:
        assert _get(http, keys.token()).status_code == 200
        assert http.patch("/api/v1/users/ann", json={"disabled": True}, headers=_admin(oidc_app)).status_code == 200
        refused = _get(http, keys.token())
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


def test_the_key_set_may_be_a_file_and_tokens_are_off_unless_configured(settings: Settings, keys: Keys,
                                                                        tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(keys.jwks()))
    app = _app(settings, oidc_jwks_file=jwks_file)
    try:
        with http_client(app) as http:
            assert _get(http, keys.token(key=keys.ec, kid="ec-1", algorithm="ES256")).status_code == 200
            assert _get(http, keys.token(key=keys.stranger, kid="rsa-9")).status_code == 401
    finally:
        app.state.engine.dispose()
    plain = create_app(settings)
    try:
        with http_client(plain) as http:
            refused = _get(http, keys.token())
            assert refused.status_code == 401 and "API key" in refused.json()["detail"]
    finally:
        plain.state.engine.dispose()


def test_the_access_log_names_the_token_user_but_never_the_token(oidc_app: FastAPI, keys: Keys) -> None:
    token = keys.token()
    bad = keys.token(aud="another-app")
    with http_client(oidc_app) as http, capture_logs() as logs:
        assert _get(http, token).status_code == 200
        assert _get(http, bad).status_code == 401
    requests = [e for e in logs if e.get("event") == "request"]
    assert [(e["user_id"], e["status"]) for e in requests] == [("ann", 200), (None, 401)]
    text = repr(logs)
    for value in (token, bad):
        assert not any(part in text for part in value.split("."))


def test_an_unreachable_key_set_is_a_401_not_a_500(settings: Settings, keys: Keys) -> None:
    app = _app(settings, oidc_jwks_url="http://127.0.0.1:9/jwks")
    try:
        with http_client(app) as http:
            refused = _get(http, keys.token())
        assert refused.status_code == 401 and "unreachable" in refused.json()["detail"]
    finally:
        app.state.engine.dispose()
