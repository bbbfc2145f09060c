"""Users and their API keys: issue, lookup, expiry, last use, revocation; and what each principal may see.

Every change here is written to the audit log (``case_api.audit``) with the acting user's id.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.auth.models import ApiKey, ApiKeyIn, Principal, Role, User, UserIn, UserPatch
from case_api.db import utcnow
from case_api.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from case_api.tenants.service import require_tenants

#: How finely a key's last use is recorded: at most one write per key per this interval, so a storm of
#: requests on one key costs one UPDATE a minute, not one per request.
LAST_USE_RESOLUTION = timedelta(minutes=1)
#: How long a process trusts a key it verified without reading it again (see :class:`KeyCache`).
KEY_CACHE_TTL = 5.0


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


# Users ---------------------------------------------------------------------------------------------


def create_user(*, session: Session, user_in: UserIn, actor: str) -> User:
    user = _add_user(session=session, user_in=user_in, actor=actor)
    session.commit()
    return user


def _add_user(*, session: Session, user_in: UserIn, actor: str) -> User:
    """Add (flushed, not committed) a new user, audited."""
    if user_in.tenant_id is not None:
        require_tenants(session=session, tenant_ids=[user_in.tenant_id])
    taken = ConflictError(f"user {user_in.id!r} already exists (a user id is never reused)")
    if session.get(User, user_in.id) is not None:
        raise taken
    user = User(id=user_in.id, display_name=user_in.display_name or user_in.id, role=user_in.role.value,
                tenant_id=user_in.tenant_id, created_at=utcnow())
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently since the check above
        session.rollback()
        raise taken from exc
    record(session, actor=actor, action="user.created", target_type="user", target_id=user.id,
           tenant_id=user.tenant_id, detail={"role": user.role, "tenant_id": user.tenant_id,
                                             "display_name": user.display_name})
    return user


def ensure_user(*, session: Session, user_in: UserIn, actor: str) -> User:
    """The user ``user_in.id``, created if missing; an existing one must have the role and tenant asked for."""
    user = session.get(User, user_in.id)
    if user is None:
        return _add_user(session=session, user_in=user_in, actor=actor)
    if (user.role, user.tenant_id) != (user_in.role.value, user_in.tenant_id):
        raise ConflictError(
            f"user {user.id!r} exists with role {user.role!r}"
            + (f" in tenant {user.tenant_id!r}" if user.tenant_id else "")
            + ": give user_id to add a key for them, or another name"
        )
    return user


def get_user(*, session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id!r} not found")
    return user


def list_users(*, session: Session) -> list[tuple[User, datetime | None]]:
    """Every user with the last use of any of their keys."""
    last_use = (
        select(ApiKey.user_id, func.max(ApiKey.last_used_at).label("last_used_at"))
        .group_by(ApiKey.user_id)
        .subquery()
    )
    rows = session.execute(
        select(User, last_use.c.last_used_at).outerjoin(last_use, last_use.c.user_id == User.id).order_by(User.id)
    )
    return [(user, last) for user, last in rows]


def update_user(*, session: Session, user_id: str, patch: UserPatch, actor: str) -> User:
    user = get_user(session=session, user_id=user_id)
    changes: dict[str, dict[str, str | None]] = {}
    if patch.display_name is not None and patch.display_name != user.display_name:
        changes["display_name"] = {"from": user.display_name, "to": patch.display_name}
        user.display_name = patch.display_name
    if patch.role is not None and (patch.role.value, patch.tenant_id) != (user.role, user.tenant_id):
        if patch.tenant_id is not None:
            require_tenants(session=session, tenant_ids=[patch.tenant_id])
        changes["role"] = {"from": user.role, "to": patch.role.value}
        changes["tenant_id"] = {"from": user.tenant_id, "to": patch.tenant_id}
        user.role, user.tenant_id = patch.role.value, patch.tenant_id
    if patch.disabled is not None and patch.disabled != user.disabled:
        if patch.disabled and user.id == actor:
            raise InvalidRequestError("you cannot disable yourself: ask another administrator")
        changes["disabled"] = {"from": str(user.disabled).lower(), "to": str(patch.disabled).lower()}
        user.disabled_at = utcnow() if patch.disabled else None
    if changes:
        action = "user.disabled" if set(changes) == {"disabled"} and patch.disabled else "user.changed"
        record(session, actor=actor, action=action, target_type="user", target_id=user.id,
               tenant_id=user.tenant_id, detail=changes)
        session.commit()
        forget_verified_keys()
    return user


# Keys ----------------------------------------------------------------------------------------------


def create_api_key(*, session: Session, key_in: ApiKeyIn, actor: str | None = None,
                   secret: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret (generated unless given).

    ``key_in.user_id`` names the owner; without it a user named ``key_in.name`` with ``key_in.role`` is
    made (or reused when it exists with that role and tenant). ``actor`` is who does it (default: the
    owner, for keys an operator makes on the server, such as the bootstrap keys).
    """
    if key_in.user_id is not None:
        user = get_user(session=session, user_id=key_in.user_id)
    else:
        assert key_in.role is not None  # ApiKeyIn checked it
        user = ensure_user(session=session, user_in=UserIn(id=_user_id_from(key_in.name), role=key_in.role,
                                                           tenant_id=key_in.tenant_id, display_name=key_in.name),
                           actor=actor or _user_id_from(key_in.name))
    if user.disabled:
        raise InvalidRequestError(f"user {user.id!r} is disabled: enable them first (PATCH /users/{user.id})")
    now = utcnow()
    if key_in.expires_at is not None and key_in.expires_at <= now:
        raise InvalidRequestError(f"expires_at {key_in.expires_at.isoformat()} is not in the future")
    secret = secret or generate_secret()
    key = ApiKey(name=key_in.name, user_id=user.id, key_hash=hash_secret(secret), prefix=secret[:8],
                 created_at=now, expires_at=key_in.expires_at)
    session.add(key)
    session.flush()
    record(session, actor=actor or user.id, action="key.created", target_type="key", target_id=str(key.id),
           tenant_id=user.tenant_id, detail={"name": key.name, "user_id": user.id, "prefix": key.prefix,
                                             "expires_at": key.expires_at.isoformat() if key.expires_at else None})
    session.commit()
    session.refresh(key)  # the owner's role and tenant
    return key, secret


def _user_id_from(name: str) -> str:
    try:
        return UserIn(id=name, role=Role.ADMIN).id
    except ValueError:
        raise InvalidRequestError(
            f"{name[:100]!r} cannot be a user id (letters, digits and . _ @ + - only): "
            "create the user first and give user_id"
        ) from None


def list_api_keys(*, session: Session, user_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(session.scalars(query))


def revoke_api_key(*, session: Session, key_id: int, actor: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record(session, actor=actor, action="key.revoked", target_type="key", target_id=str(key.id),
               tenant_id=key.tenant_id, detail={"name": key.name, "user_id": key.user_id, "prefix": key.prefix})
        session.commit()
        forget_verified_keys()
    return key


class LastUseThrottle:
    """Remembers, per process, when each key's last use was written, so it is written once per interval."""

    def __init__(self, interval: timedelta = LAST_USE_RESOLUTION) -> None:
        self.interval = interval.total_seconds()
        self._written: dict[int, float] = {}
        self._lock = threading.Lock()

    def due(self, key_id: int) -> bool:
        """Whether to write now; claims the write, so concurrent requests on one key write once."""
        now = time.monotonic()
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < self.interval:
                return False
            self._written[key_id] = now
            return True

    def recent(self, key_id: int) -> bool:
        """Whether this process wrote the key's last use within the interval (so there is nothing to write)."""
        last = self._written.get(key_id)
        return last is not None and time.monotonic() - last < self.interval


@dataclass(frozen=True)
class VerifiedKey:
    principal: Principal
    prefix: str
    expires_at: datetime | None
    verified: float  # time.monotonic() when read from the database


#: Every KeyCache of this process, so a revocation or a user change made here empties them all at once.
_KEY_CACHES: weakref.WeakSet[KeyCache] = weakref.WeakSet()
#: Bumped by :func:`forget_verified_keys`: a verification that read the database before a change committed
#: and finishes after it is not cached.
_generation = 0


class KeyCache:
    """API keys this process verified in the last ``ttl`` seconds, by the key's hash.

    A request whose key was verified recently skips the database read of key and user (one round trip
    each request otherwise). What stays honoured: expiry (checked against the stored ``expires_at`` on every
    hit), and revocations, user disabling and role changes made in this process, which empty every cache at
    once (:func:`forget_verified_keys`). One made by another process (another `soc api` worker, a `soc keys`
    command) is seen here within ``ttl`` seconds at most. Only the hash is kept, never the secret.
    """

    def __init__(self, ttl: float = KEY_CACHE_TTL, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._keys: dict[str, VerifiedKey] = {}
        self._lock = threading.Lock()
        _KEY_CACHES.add(self)

    def get(self, key_hash: str) -> VerifiedKey | None:
        found = self._keys.get(key_hash)
        if found is None or time.monotonic() - found.verified >= self.ttl:
            return None
        return found

    def put(self, key_hash: str, verified: VerifiedKey, generation: int) -> None:
        with self._lock:
            if generation != _generation:
                return
            if len(self._keys) >= self.size:
                self._keys.clear()  # a flood of distinct valid keys: start over rather than grow
            self._keys[key_hash] = verified

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


def forget_verified_keys() -> None:
    """Empty every :class:`KeyCache` of this process (a key was revoked or a user changed; call after commit)."""
    global _generation
    _generation += 1
    for cache in list(_KEY_CACHES):
        cache.clear()


def cached_principal(*, secret: str, cache: KeyCache | None, throttle: LastUseThrottle | None) -> Principal | None:
    """The principal of a key ``cache`` verified within its ttl whose last use ``throttle`` wrote within its
    interval: what :func:`authenticate` would answer without a statement to run. ``None`` when it needs the
    database (not cached, or its last use to write). Raises :class:`AuthenticationError` for an expired key.

    No I/O, so the API calls it on the event loop and goes to a worker thread only for ``authenticate``.
    """
    if cache is None or throttle is None:
        return None
    known = cache.get(hash_secret(secret))
    if known is None or known.principal.key_id is None or not throttle.recent(known.principal.key_id):
        return None
    _refuse_expired(known, utcnow())
    return known.principal


def _refuse_expired(known: VerifiedKey, now: datetime) -> None:
    if known.expires_at is not None and known.expires_at <= now:
        raise AuthenticationError(
            f"API key {known.prefix}... expired at {known.expires_at.isoformat()}: ask for a new one"
        )


def authenticate(*, session: Session, secret: str, throttle: LastUseThrottle | None = None,
                 cache: KeyCache | None = None) -> Principal | None:
    """The principal of an active, unexpired key of an enabled user with this secret, or ``None``.

    Raises :class:`AuthenticationError` for an expired key or a disabled user (so the caller learns why).
    Records the key's last use at most once per :data:`LAST_USE_RESOLUTION` per key: across processes the
    UPDATE only writes when the stored time is older than that, and within one ``throttle`` skips the
    statement altogether. With a ``cache``, a key verified within its ttl is not read again (see
    :class:`KeyCache` for what that leaves honoured).
    """
    key_hash = hash_secret(secret)
    now = utcnow()
    known = cache.get(key_hash) if cache is not None else None
    if known is None:
        generation = _generation
        # Looking up by hash: the timing of the index lookup can leak the hash, never the secret.
        row = session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        key, user = row
        if user.disabled:
            raise AuthenticationError(f"user {user.id!r} is disabled")
        known = VerifiedKey(
            principal=Principal(user_id=user.id, role=Role(user.role), tenant_id=user.tenant_id, key_id=key.id),
            prefix=key.prefix, expires_at=key.expires_at, verified=time.monotonic(),
        )
        if cache is not None and (key.expires_at is None or key.expires_at > now):
            cache.put(key_hash, known, generation)
        last_used_at = key.last_used_at
    else:
        last_used_at = None  # not read: the UPDATE below checks the stored time itself
    _refuse_expired(known, now)
    key_id = known.principal.key_id
    assert key_id is not None
    if (last_used_at is None or now - last_used_at >= LAST_USE_RESOLUTION) and (
        throttle is None or throttle.due(key_id)
    ):
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id,
                   or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USE_RESOLUTION))
            .values(last_used_at=now)
        )
        session.commit()
    return known.principal


def tenant_scope(principal: Principal) -> frozenset[str] | None:
    """Tenant ids whose data ``principal`` may see; ``None`` means every tenant.

    This is the one place that decides tenant visibility; :func:`case_api.scope.scoped` applies it
    to every query for tenant data.
    """
    if principal.role.is_tenant_bound:
        # A tenant role without a tenant sees nothing rather than everything.
        return frozenset({principal.tenant_id}) if principal.tenant_id else frozenset()
    return None
