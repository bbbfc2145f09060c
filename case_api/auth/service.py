"""API key issue, lookup and revocation, and what each principal may see."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from case_api.auth.models import ApiKey, ApiKeyIn, Principal, Role
from case_api.db import utcnow
from case_api.errors import NotFoundError
from case_api.tenants.service import require_tenants


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def create_api_key(*, session: Session, key_in: ApiKeyIn, secret: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret (generated unless given)."""
    if key_in.tenant_id is not None:
        require_tenants(session=session, tenant_ids=[key_in.tenant_id])
    secret = secret or generate_secret()
    key = ApiKey(
        name=key_in.name,
        role=key_in.role.value,
        tenant_id=key_in.tenant_id,
        key_hash=hash_secret(secret),
        prefix=secret[:8],
    )
    session.add(key)
    session.commit()
    return key, secret


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(*, session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return key


def authenticate(*, session: Session, secret: str) -> Principal | None:
    """The principal owning an active key with this secret, or ``None``."""
    # Looking up by hash: the timing of the index lookup can leak the hash, never the secret.
    key = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_secret(secret), ApiKey.revoked_at.is_(None))
    ).first()
    if key is None:
        return None
    return Principal(key_id=key.id, name=key.name, role=Role(key.role), tenant_id=key.tenant_id)


def tenant_scope(principal: Principal) -> frozenset[str] | None:
    """Tenant ids whose data ``principal`` may see; ``None`` means every tenant.

    This is the one place that decides tenant visibility; :func:`case_api.scope.scoped` applies it
    to every query for tenant data.
    """
    if principal.role.is_tenant_bound:
        # A tenant role without a tenant sees nothing rather than everything.
        return frozenset({principal.tenant_id}) if principal.tenant_id else frozenset()
    return None
