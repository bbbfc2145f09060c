"""Google-signed ID tokens of Pub/Sub push subscriptions: who pushed, proven by Google's signature.

A push subscription with authentication sends `Authorization: Bearer <JWT>`, an OpenID Connect ID token that
Google signs (RS256) for the subscription's service account, with `iss` accounts.google.com, `aud` the
subscription's audience (its endpoint URL unless one is set), `email` the service account and
`email_verified` true, valid for up to an hour (cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
`GoogleIdTokens.identity` checks the signature and expiry with google-auth's `id_token.verify_token` against
Google's certificates (`https://www.googleapis.com/oauth2/v1/certs`, configurable: `SOC_GOOGLE_ID_CERTS_URL`),
then the issuer and the verified email, and returns the (service account, audience) pair that a registered
http source's push settings must name: the intake files the push under that source's tenant.

The certificates are fetched once and kept for their `Cache-Control: max-age` (at most a day); a token whose
key id is not among them fetches them again once (Google rotates its keys). Certificates that cannot be
fetched make the intake answer 503, so Pub/Sub delivers again later; a token that fails a check, 401.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.errors import CollectorError

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
MAX_CACHE_SECONDS = 24 * 3600
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class IdTokenRefused(CollectorError):
    """The bearer token is not a valid Google-signed ID token (signature, expiry, issuer, email)."""


class CertificatesUnavailable(CollectorError):
    """Google's certificates could not be fetched: the push cannot be checked now (HTTP 503)."""


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: a source's own token (base64url, no dots) never does."""
    return bool(_JWT.match(token))


@dataclass(frozen=True)
class PushIdentity:
    """The service account a push subscription signs as, and the audience it signs for."""

    service_account: str
    audience: str


class _CachedResponse:
    def __init__(self, data: bytes) -> None:
        self.status, self.data = 200, data
        self.headers: dict[str, str] = {}


class GoogleIdTokens:
    """Verifies push ID tokens (see the module doc). Thread-safe; one per intake."""

    def __init__(self, certs_url: str = GOOGLE_CERTS_URL, *, clock_skew_seconds: int = 10,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.certs_url = certs_url
        self.clock_skew_seconds = clock_skew_seconds
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None  # (good until, body)

    def identity(self, token: str) -> PushIdentity:
        """The verified (service account, audience) of `token`; `IdTokenRefused` / `CertificatesUnavailable`."""
        try:
            claims = self._verify(token, fresh=False)
        except _UnknownKey:
            claims = self._verify(token, fresh=True)
        issuer = claims.get("iss")
        if issuer not in GOOGLE_ISSUERS:
            raise IdTokenRefused(f"the token's issuer {issuer!r} is not Google's (accounts.google.com)")
        email, audience = claims.get("email"), claims.get("aud")
        if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
            raise IdTokenRefused("the token carries no verified service account email (email, email_verified)")
        if not isinstance(audience, str) or not audience:
            raise IdTokenRefused("the token carries no single audience")
        return PushIdentity(email, audience)

    def _verify(self, token: str, *, fresh: bool) -> dict[str, Any]:
        from google.auth import exceptions
        from google.oauth2 import id_token

        request = self._request(fresh=fresh)
        try:
            claims: dict[str, Any] = dict(id_token.verify_token(
                token, request, audience=None, certs_url=self.certs_url,
                clock_skew_in_seconds=self.clock_skew_seconds))
        except exceptions.TransportError as error:
            raise CertificatesUnavailable(f"Google's certificates could not be fetched: {error}",
                                          where=self.certs_url) from None
        except (ValueError, exceptions.GoogleAuthError) as error:
            if "Certificate for key id" in str(error) and not fresh:
                raise _UnknownKey from None
            raise IdTokenRefused(f"the ID token is not valid: {error}") from None
        return claims

    def _request(self, *, fresh: bool) -> Any:
        """google-auth's transport for the certificates, answering from the cache while it is good."""
        from google.auth.transport import requests as transport

        verifier = self

        class CachingRequest(transport.Request):
            def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                         timeout: Any = None, **kwargs: Any) -> Any:
                with verifier._lock:
                    now = verifier.clock()
                    if not fresh and verifier._cached is not None and verifier._cached[0] > now:
                        return _CachedResponse(verifier._cached[1])
                    response = super().__call__(url, method=method, body=body, headers=headers,  # type: ignore[no-untyped-call]
                                                timeout=verifier.timeout, **kwargs)
                    verifier.fetches += 1
                    if response.status == 200:
                        verifier._cached = (now + _max_age(response.headers), response.data)
                    return response

        return CachingRequest()


class _UnknownKey(Exception):
    pass


def _max_age(headers: Any) -> float:
    control = str(headers.get("cache-control") or headers.get("Cache-Control") or "")
    found = re.search(r"max-age=(\d+)", control)
    return float(min(int(found.group(1)), MAX_CACHE_SECONDS)) if found else 3600.0
