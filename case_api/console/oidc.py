"""Console sign-in with OpenID Connect: the authorization code flow with PKCE, state and nonce.

On when ``SOC_OIDC_ISSUER`` (with the API's bearer-token settings) and ``SOC_OIDC_CLIENT_ID`` are set. The
provider's endpoints come from its discovery document (``{issuer}/.well-known/openid-configuration``, whose
``issuer`` must be the configured one). ``/console/oidc/login`` keeps a random state, nonce and PKCE verifier
in a short-lived HttpOnly cookie and sends the browser to the authorization endpoint (S256 challenge);
``/console/oidc/callback`` checks the state, exchanges the code at the token endpoint (with the verifier, and
the client secret when one is configured), verifies the ID token with the API's own ``TokenVerifier``
(signature by the configured key set, issuer, audience = the client id, expiry) and its nonce, maps its claims
to a user exactly as a bearer token's are, and starts the same server-side session as an API key does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from case_api.auth.tokens import OidcConfig, TokenVerifier
from case_api.console.sessions import SESSION_LIFETIME, start_oidc_session
from case_api.console.web import CONSOLE_PREFIX, SESSION_COOKIE, render, safe_next, set_cookie
from case_api.db import SessionDep
from case_api.errors import AuthenticationError

#: The cookie holding the pending sign-in's state, nonce, PKCE verifier and next page.
FLOW_COOKIE = "citysoc_console_oidc"
FLOW_SECONDS = 600
DISCOVERY_SECONDS = 3600
TIMEOUT = httpx.Timeout(10.0)

router = APIRouter()


class ConsoleOidc:
    """The console's client of the provider; its ID tokens are verified like the API's bearer tokens."""

    def __init__(self, config: OidcConfig, *, client_id: str, client_secret: str | None = None,
                 provider_name: str = "single sign-on", redirect_uri: str | None = None) -> None:
        self.config = config
        self.client_id = client_id
        self.client_secret = client_secret
        self.provider_name = provider_name
        self.redirect_uri = redirect_uri
        # ID tokens name the client as their audience; everything else is checked as for bearer tokens.
        self.verifier = TokenVerifier(replace(config, audience=client_id))
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once an hour."""
        with self._lock:
            cached = self._discovery
            if cached is not None and time.monotonic() - cached[0] < DISCOVERY_SECONDS:
                return cached[1]
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            answer = httpx.get(url, timeout=TIMEOUT)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthenticationError(f"the identity provider's discovery document is unreachable: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.config.issuer or not all(
            isinstance(document.get(k), str) for k in ("authorization_endpoint", "token_endpoint")
        ):
            raise AuthenticationError("the identity provider's discovery document does not match SOC_OIDC_ISSUER")
        with self._lock:
            self._discovery = (time.monotonic(), document)
        return document


def console_oidc(request: Request) -> ConsoleOidc | None:
    return getattr(request.app.state, "console_oidc", None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _redirect_uri(request: Request, oidc: ConsoleOidc) -> str:
    return oidc.redirect_uri or str(request.url_for("console_oidc_callback"))


def _refused(request: Request, reason: str, status_code: int = 401) -> HTMLResponse:
    response = render(request, "error.html", {
        "user": None, "status_code": status_code, "heading": "Cannot sign in",
        "detail": f"{reason}. Try again from the sign-in page, or sign in with an API key.",
    }, status_code=status_code)
    response.delete_cookie(FLOW_COOKIE, path=CONSOLE_PREFIX)
    return response


@router.get("/oidc/login", include_in_schema=False)
def oidc_login(request: Request, next: str | None = None) -> Response:
    oidc = console_oidc(request)
    if oidc is None:
        return _refused(request, "single sign-on is not configured here", status_code=404)
    try:
        endpoint = oidc.discovery()["authorization_endpoint"]
    except AuthenticationError as exc:
        return _refused(request, exc.message, status_code=503)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    params = {
        "response_type": "code", "client_id": oidc.client_id, "redirect_uri": _redirect_uri(request, oidc),
        "scope": "openid profile", "state": state, "nonce": nonce,
        "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()), "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}", status_code=303)
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "next": safe_next(next)}
    set_cookie(response, request, FLOW_COOKIE, _b64(json.dumps(flow).encode()), max_age=FLOW_SECONDS)
    return response


def _flow(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLOW_COOKIE, "")
    try:
        flow = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))) if 0 < len(raw) < 2000 else None
    except ValueError:
        return None
    keys = ("state", "nonce", "verifier", "next")
    if not isinstance(flow, dict) or not all(isinstance(flow.get(k), str) and flow[k] for k in keys):
        return None
    return {k: flow[k] for k in keys}


def _same(expected: str, offered: Any) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(expected.encode(), offered.encode())


@router.get("/oidc/callback", name="console_oidc_callback", include_in_schema=False)
def oidc_callback(request: Request, session: SessionDep, code: str | None = None, state: str | None = None,
                  error: str | None = None, error_description: str | None = None) -> Response:
    oidc = console_oidc(request)
    if oidc is None:
        return _refused(request, "single sign-on is not configured here", status_code=404)
    flow = _flow(request)
    if flow is None or not _same(flow["state"], state):
        return _refused(request, "the sign-in expired or did not start in this browser (state does not match)")
    if error:
        return _refused(request, f"the identity provider refused: {error[:100]} {(error_description or '')[:300]}")
    if not code or len(code) > 2000:
        return _refused(request, "the identity provider sent no authorization code")
    try:
        endpoint = oidc.discovery()["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": _redirect_uri(request, oidc),
                "client_id": oidc.client_id, "code_verifier": flow["verifier"]}
        auth = (oidc.client_id, oidc.client_secret) if oidc.client_secret else None
        answer = httpx.post(endpoint, data=form, auth=auth, timeout=TIMEOUT)
        tokens = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if answer.status_code != 200 or not isinstance(id_token, str):
            detail = tokens.get("error", "") if isinstance(tokens, dict) else ""
            raise AuthenticationError(f"the identity provider's token endpoint answered {answer.status_code} "
                                      f"{str(detail)[:100]} without an ID token")
        verifier = oidc.verifier
        claims = verifier.claims(id_token)
        if not _same(flow["nonce"], claims.get("nonce")):
            raise AuthenticationError("the ID token's nonce does not match this sign-in")
        principal = verifier.principal_from_claims(session, claims, by="console sign-in")
        secret = start_oidc_session(session=session, principal=principal)
    except httpx.HTTPError as exc:
        return _refused(request, f"the identity provider's token endpoint is unreachable: {exc}", status_code=503)
    except ValueError:
        return _refused(request, "the identity provider's token endpoint answered with invalid JSON")
    except AuthenticationError as exc:
        return _refused(request, f"cannot sign in: {exc.message}")
    response = RedirectResponse(safe_next(flow["next"]), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, secret, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(FLOW_COOKIE, path=CONSOLE_PREFIX)
    return response
