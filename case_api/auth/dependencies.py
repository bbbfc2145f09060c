"""FastAPI dependencies for authentication, roles and tenant scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from case_api.auth.models import Principal, Role
from case_api.auth.service import KeyCache, LastUseThrottle, authenticate, cached_principal, tenant_scope
from case_api.auth.tokens import TokenVerifier, looks_like_jwt
from case_api.db import SessionDep
from case_api.errors import AuthenticationError, PermissionDeniedError

# Declared as security schemes, so the OpenAPI document says how to authenticate (and Swagger UI offers
# it); ``auto_error=False`` leaves the wording of a refusal to get_principal.
bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="API key, or an OpenID Connect access token (JWT) when configured",
)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="API key")

#: Longest API key looked at; longer ones are refused without hashing them.
MAX_SECRET_LENGTH = 512
#: Longest bearer JWT looked at (an RS512 signature alone is 683 characters).
MAX_TOKEN_LENGTH = 8192


def _presented_secret(bearer: HTTPAuthorizationCredentials | None, x_api_key: str | None) -> str | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


async def get_principal(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
    x_api_key: Annotated[str | None, Depends(api_key_scheme)] = None,
) -> Principal:
    secret = _presented_secret(bearer, x_api_key)
    if secret is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is not None and bearer is not None and secret == bearer.credentials.strip() and looks_like_jwt(secret):
        if len(secret) > MAX_TOKEN_LENGTH:
            raise AuthenticationError(f"bearer token longer than {MAX_TOKEN_LENGTH} characters")
        principal: Principal | None = await run_in_threadpool(verifier.principal, session, secret)
    elif len(secret) > MAX_SECRET_LENGTH:
        principal = None
    else:
        throttle: LastUseThrottle | None = getattr(request.app.state, "last_use", None)
        cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
        # A key verified moments ago is answered here on the event loop; the database only on a worker thread.
        principal = cached_principal(secret=secret, cache=cache, throttle=throttle)
        if principal is None:
            principal = await run_in_threadpool(
                lambda: authenticate(session=session, secret=secret, throttle=throttle, cache=cache))
    if principal is None:
        raise AuthenticationError("invalid or revoked API key")
    # For the access log, which runs outside the dependency's context (request.state lives in the scope).
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


# The checks below only compute: ``async def`` runs them on the event loop instead of a worker thread each.
async def get_tenant_scope(principal: CurrentPrincipal) -> frozenset[str] | None:
    return tenant_scope(principal)


TenantScope = Annotated[frozenset[str] | None, Depends(get_tenant_scope)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: the current principal, if its role is one of ``roles``."""
    allowed = frozenset(roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise PermissionDeniedError(f"role {principal.role.value!r} may not do this; allowed roles: {names}")
        return principal

    return check
