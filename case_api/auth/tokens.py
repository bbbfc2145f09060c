"""Bearer tokens from an OpenID Connect identity provider (JWTs), accepted when configured.

With ``SOC_OIDC_ISSUER``, ``SOC_OIDC_AUDIENCE`` and a key set (``SOC_OIDC_JWKS_URL``, e.g. the provider's
``jwks_uri``, or ``SOC_OIDC_JWKS_FILE``), a bearer credential shaped like a JWT is verified with PyJWT:
signature by a key of the set (by ``kid``), one of the allowed asymmetric algorithms (never ``none`` or
an HMAC one, so a public key cannot be used as a shared secret), issuer, audience, expiry and not-before
(with ``SOC_OIDC_LEEWAY`` seconds of clock skew). Its claims name the user (``SOC_OIDC_USER_CLAIM``,
default ``preferred_username``), the role (``SOC_OIDC_ROLE_CLAIM``, default ``citysoc_role``: a role name,
or a list holding exactly one) and, for a tenant role, the tenant (``SOC_OIDC_TENANT_CLAIM``, default
``citysoc_tenant``). A claim name may be a dotted path (``realm_access.roles``, Keycloak's).

The provider is authoritative for role and tenant: the first token of a user provisions the user
(audited ``user.provisioned``), a later one with another role or tenant changes it (``user.changed``),
and a disabled user's tokens are refused like their keys. Nothing is written for a token that matches.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.auth.models import USER_ID_PATTERN, Principal, Role, User
from case_api.db import utcnow
from case_api.errors import AuthenticationError
from case_api.tenants.models import TENANT_ID_PATTERN
from case_api.tenants.service import known_tenants

#: Signature algorithms accepted by default: asymmetric only.
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def looks_like_jwt(credential: str) -> bool:
    """API keys are URL-safe base64 without dots; a JWT is three dot-separated parts."""
    return credential.startswith("eyJ") and bool(_JWT_SHAPE.match(credential))


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    user_claim: str = "preferred_username"
    role_claim: str = "citysoc_role"
    tenant_claim: str = "citysoc_tenant"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: int = 30

    def __post_init__(self) -> None:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("OIDC bearer tokens need exactly one of SOC_OIDC_JWKS_URL and SOC_OIDC_JWKS_FILE")
        weak = [a for a in self.algorithms if a.upper().startswith("HS") or a.lower() == "none"]
        if weak:
            raise ValueError(f"SOC_OIDC_ALGORITHMS: {', '.join(weak)} not allowed; use the provider's asymmetric ones")


class TokenVerifier:
    """Verifies bearer JWTs against the configured issuer's keys and maps their claims to a principal."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._client = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300, timeout=10) \
            if config.jwks_url else None
        self._file_keys: tuple[float, jwt.PyJWKSet] | None = None
        self._lock = threading.Lock()

    def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        assert self.config.jwks_file is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self._keys_from_file(self.config.jwks_file)
        for key in keys.keys:
            if kid is None or key.key_id == kid:
                return key
        raise jwt.PyJWKClientError(f"no key with kid {str(kid)[:64]!r} in the configured key set")

    def _keys_from_file(self, path: Path) -> jwt.PyJWKSet:
        """The file's key set, read again when the file changes (a key rotation)."""
        mtime = path.stat().st_mtime
        with self._lock:
            if self._file_keys is None or self._file_keys[0] != mtime:
                self._file_keys = (mtime, jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8")))
            return self._file_keys[1]

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims; :class:`AuthenticationError` (never quoting the token) otherwise."""
        try:
            key = self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError("bearer token not checked: the identity provider's keys are unreachable") \
                from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthenticationError(f"invalid bearer token: {str(exc)[:200]}") from None
        return claims

    def principal(self, session: Session, token: str) -> Principal:
        return self.principal_from_claims(session, self.claims(token))

    def principal_from_claims(self, session: Session, claims: Mapping[str, Any], *, by: str = "bearer token"
                              ) -> Principal:
        """The user verified ``claims`` name, provisioned or updated as the provider says (``by`` goes into the
        audit record): the API's bearer tokens and the console's ID tokens map the same way."""
        user_id = _claim(claims, self.config.user_claim)
        if not isinstance(user_id, str) or not re.match(USER_ID_PATTERN, user_id):
            raise AuthenticationError(f"bearer token: claim {self.config.user_claim!r} is not a valid user id")
        role = _role(_claim(claims, self.config.role_claim), self.config.role_claim)
        tenant_id: str | None = None
        if role.is_tenant_bound:
            tenant = _claim(claims, self.config.tenant_claim)
            if not isinstance(tenant, str) or not re.match(TENANT_ID_PATTERN, tenant) or not known_tenants(
                session=session, tenant_ids=[tenant]
            ):
                raise AuthenticationError(
                    f"bearer token: role {role.value!r} needs claim {self.config.tenant_claim!r} naming a registered "
                    "tenant"
                )
            tenant_id = tenant
        _sync_user(session, user_id=user_id, role=role, tenant_id=tenant_id, display_name=claims.get("name"), by=by)
        return Principal(user_id=user_id, role=role, tenant_id=tenant_id, key_id=None)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _role(value: Any, claim: str) -> Role:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    known = {Role(name) for name in names if isinstance(name, str) and name in Role.__members__.values()}
    if len(known) != 1:
        raise AuthenticationError(
            f"bearer token: claim {claim!r} must name exactly one role of {', '.join(r.value for r in Role)}"
        )
    return known.pop()


def _sync_user(session: Session, *, user_id: str, role: Role, tenant_id: str | None, display_name: Any,
               by: str) -> None:
    """Provision the user on their first token; follow the provider's role and tenant after that."""
    user = session.get(User, user_id)
    if user is not None and user.disabled:
        raise AuthenticationError(f"user {user_id!r} is disabled")
    if user is not None and (user.role, user.tenant_id) == (role.value, tenant_id):
        return
    if user is None:
        name = display_name if isinstance(display_name, str) and 0 < len(display_name) <= 200 else user_id
        session.add(User(id=user_id, display_name=name, role=role.value, tenant_id=tenant_id, created_at=utcnow()))
        record(session, actor=user_id, action="user.provisioned", target_type="user", target_id=user_id,
               tenant_id=tenant_id, detail={"role": role.value, "tenant_id": tenant_id, "by": by})
    else:
        record(session, actor=user_id, action="user.changed", target_type="user", target_id=user_id,
               tenant_id=tenant_id, detail={"role": {"from": user.role, "to": role.value},
                                            "tenant_id": {"from": user.tenant_id, "to": tenant_id},
                                            "by": by})
        user.role, user.tenant_id = role.value, tenant_id
    try:
        session.commit()
    except IntegrityError:  # the same user's first two tokens at once: the other request provisioned it
        session.rollback()
