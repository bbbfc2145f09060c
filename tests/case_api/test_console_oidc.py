"""Console sign-in with OpenID Connect against a small provider served here over HTTP (discovery, JWKS, an
authorization endpoint that sends the browser back with a code, a token endpoint that checks the PKCE verifier
and issues an RS256 ID token): the code flow reaches the queue with a server-side session; a wrong state, nonce,
audience, an expired token, a user the claims cannot name or a disabled user is refused with no session."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import func, select, update

from case_api.app import create_app
from case_api.auth.models import User
from case_api.console.models import ConsoleSession
from case_api.db import utcnow
from case_api.settings import Settings
from tests.case_api.conftest import http_client

CLIENT_ID = "citysoc-console"


@dataclass
class Provider:
    """What the next ID token says differently (claims to change, a nonce to put instead of the asked one)."""

    url: str = ""
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    next_claims: dict[str, Any] = field(default_factory=dict)

    def id_token(self, request: dict[str, str]) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": request["client_id"], "sub": "u-1", "iat": now, "exp": now + 300,
                  "nonce": request["nonce"], "preferred_username": "olga", "name": "Olga Analyst",
                  "citysoc_role": "soc_analyst", **self.next_claims}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    idp = Provider()

    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json(200, {"issuer": idp.url, "authorization_endpoint": f"{idp.url}/authorize",
                                 "token_endpoint": f"{idp.url}/token", "jwks_uri": f"{idp.url}/jwks",
                                 "code_challenge_methods_supported": ["S256"]})
            elif url.path == "/jwks":
                jwk = json.loads(RSAAlgorithm.to_jwk(idp.key.public_key()))
                self._json(200, {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
            elif url.path == "/authorize":  # the user has signed in at the provider: back with a code
                asked = {k: v[0] for k, v in parse_qs(url.query).items()}
                assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
                code = secrets.token_urlsafe(16)
                idp.codes[code] = asked
                self.send_response(302)
                query = urlencode({"code": code, "state": asked["state"]})
                self.send_header("Location", f"{asked['redirect_uri']}?{query}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {})

        def do_POST(self) -> None:
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            asked = idp.codes.pop(form.get("code", ""), None)
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
            if (asked is None or form.get("grant_type") != "authorization_code" or challenge != asked["code_challenge"]
                    or form.get("redirect_uri") != asked["redirect_uri"] or form.get("client_id") != CLIENT_ID):
                self._json(400, {"error": "invalid_grant"})
                return
            self._json(200, {"access_token": "opaque", "token_type": "Bearer", "id_token": idp.id_token(asked)})

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield idp
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def app(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    home: Path = tmp_path_factory.mktemp("oidc-home")
    app = create_app(Settings(home=home, oidc_issuer=provider.url, oidc_audience="citysoc-case-api",
                              oidc_jwks_url=f"{provider.url}/jwks", oidc_client_id=CLIENT_ID,
                              oidc_provider_name="City IdP"))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def idp(provider: Provider) -> Iterator[Provider]:
    provider.next_claims = {}
    yield provider
    provider.next_claims = {}


def _sessions(app: FastAPI) -> int:
    with app.state.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(ConsoleSession)) or 0)


def _sign_in(app: FastAPI, browser: httpx.Client, *, state: str | None = None, next_path: str = "/console/queue"
             ) -> httpx.Response:
    """The browser's walk: the console's button, the provider's authorization endpoint, back to the callback."""
    start = browser.get("/console/oidc/login", params={"next": next_path})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["client_id"] == [CLIENT_ID] and asked["code_challenge_method"] == ["S256"]
    assert len(asked["nonce"][0]) >= 32 and len(asked["state"][0]) >= 32
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/console/oidc/callback"
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    if state is not None:
        query["state"] = state
    return browser.get(callback.path, params=query)


def test_the_code_flow_signs_in_with_a_session_and_reaches_the_queue(app: FastAPI, idp: Provider) -> None:
    with http_client(app) as browser:
        page = browser.get("/console/login")
        assert 'id="sign-in-oidc"' in page.text and "Sign in with City IdP" in page.text
        before = _sessions(app)
        signed_in = _sign_in(app, browser)
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/console/queue"
        cookie = next(v for v in signed_in.headers.get_list("set-cookie") if v.startswith("citysoc_console="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert _sessions(app) == before + 1
        queue = browser.get("/console/queue")
        assert queue.status_code == 200 and 'data-testid="signed-in-as"' in queue.text and "Olga Analyst" in queue.text
        # the session has its CSRF token: a form without it is refused, sign-out with it ends the session
        assert browser.post("/console/logout", data={}).status_code == 403
        token = queue.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert browser.post("/console/logout", data={"csrf_token": token}).status_code == 303
        assert browser.get("/console/queue").status_code == 303
    with app.state.session_factory() as session:
        olga = session.get(User, "olga")
        assert olga is not None and olga.role == "soc_analyst"


@pytest.mark.parametrize(("claims", "reason"), [
    ({"nonce": "not-the-one-asked"}, "nonce"),
    ({"aud": "another-app"}, "audience"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"preferred_username": "ghost", "citysoc_role": None}, "exactly one role"),
    ({"preferred_username": "no one"}, "valid user id"),
    ({"citysoc_role": "rule_author"}, "no console pages"),
])
def test_an_id_token_not_for_this_sign_in_is_refused_without_a_session(app: FastAPI, idp: Provider,
                                                                         claims: dict[str, Any], reason: str) -> None:
    idp.next_claims = claims
    before = _sessions(app)
    with http_client(app) as browser:
        refused = _sign_in(app, browser)
        assert refused.status_code == 401 and "Cannot sign in" in refused.text and reason in refused.text.lower()
        assert not any(v.startswith("citysoc_console=") for v in refused.headers.get_list("set-cookie"))
        assert browser.get("/console/queue").status_code == 303
    assert _sessions(app) == before


def test_a_wrong_state_is_refused_before_the_code_is_used(app: FastAPI, idp: Provider) -> None:
    before = _sessions(app)
    with http_client(app) as browser:
        refused = _sign_in(app, browser, state="forged-state")
        assert refused.status_code == 401 and "state does not match" in refused.text
    with http_client(app) as fresh:  # a callback in a browser that never started the sign-in
        assert fresh.get("/console/oidc/callback", params={"code": "x", "state": "y"}).status_code == 401
    assert _sessions(app) == before


def test_a_disabled_user_is_refused(app: FastAPI, idp: Provider) -> None:
    idp.next_claims = {"preferred_username": "dora"}
    with http_client(app) as browser:
        assert _sign_in(app, browser).status_code == 303
    with app.state.session_factory() as session:
        session.execute(update(User).where(User.id == "dora").values(disabled_at=utcnow()))
        session.commit()
    before = _sessions(app)
    with http_client(app) as browser:
        refused = _sign_in(app, browser)
        assert refused.status_code == 401 and "disabled" in refused.text
    assert _sessions(app) == before


def test_without_a_client_id_there_is_no_button_and_no_flow(tmp_path: Path, provider: Provider) -> None:
    app = create_app(Settings(home=tmp_path, oidc_issuer=provider.url, oidc_audience="citysoc-case-api",
                              oidc_jwks_url=f"{provider.url}/jwks"))
    try:
        with http_client(app) as browser:
            assert 'id="sign-in-oidc"' not in browser.get("/console/login").text
            assert browser.get("/console/oidc/login").status_code == 404
    finally:
        app.state.engine.dispose()


def test_a_code_the_token_endpoint_refuses_makes_no_session(app: FastAPI, idp: Provider) -> None:
    with http_client(app) as browser:
        start = browser.get("/console/oidc/login")
        flow_cookie = browser.cookies["citysoc_console_oidc"]
        callback = httpx.get(start.headers["location"], follow_redirects=False).headers["location"]
        assert browser.get(callback).status_code == 303  # the code is used
    before = _sessions(app)
    with http_client(app) as replay:  # the same code again, even with the flow's cookie
        replay.cookies.set("citysoc_console_oidc", flow_cookie, path="/console")
        refused = replay.get(callback)
        assert refused.status_code == 401 and "invalid_grant" in refused.text
    assert _sessions(app) == before
