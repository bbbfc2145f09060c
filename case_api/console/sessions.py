"""Console sign-in: a server-side session per browser, started with a user's API key or OpenID Connect.

The cookie holds a random secret; the database keeps its SHA-256 only (as for API keys). Every request
re-reads the session with its key and user, so signing out, revoking or expiring the key, disabling the
user or moving them to a role without console pages ends the session at once. The user's current role
and tenant are used, never a copy taken at sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from case_api.auth.models import ApiKey, Principal, Role, User
from case_api.auth.roles import CASE_READERS, CASE_WORKERS
from case_api.auth.service import LastUseThrottle, authenticate
from case_api.console.models import ConsoleSession
from case_api.db import utcnow
from case_api.errors import AuthenticationError

#: Longest a session lasts from sign-in (a key that expires sooner ends it sooner).
SESSION_LIFETIME = timedelta(hours=12)
#: How long an ended session's row is kept (then the next sign-in deletes it).
ENDED_KEPT = timedelta(days=1)
#: Roles that have console pages: those that read cases.
CONSOLE_ROLES = frozenset(CASE_READERS)


@dataclass(frozen=True)
class ConsoleUser:
    """Who is signed in, as of this request."""

    principal: Principal
    display_name: str
    session_id: str
    csrf_token: str
    flash: str | None = None
    flash_ok: bool = True

    @property
    def is_city(self) -> bool:
        return not self.principal.role.is_tenant_bound

    @property
    def may_work(self) -> bool:
        """May change cases (a viewer reads only)."""
        return self.principal.role in CASE_WORKERS


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def start_session(*, session: Session, api_key: str, throttle: LastUseThrottle | None = None,
                  now: datetime | None = None) -> str:
    """Sign in with ``api_key``: the new session's cookie secret.

    Raises :class:`AuthenticationError` with the reason for a wrong, revoked or expired key, a disabled user,
    or a role without console pages.
    """
    principal = authenticate(session=session, secret=api_key, throttle=throttle) if len(api_key) <= 512 else None
    if principal is None or principal.key_id is None:
        raise AuthenticationError("unknown or revoked API key")
    if principal.role not in CONSOLE_ROLES:
        raise AuthenticationError(f"the role {principal.role.value!r} has no console pages: use the API or the CLI")
    now = now or utcnow()
    key = session.get(ApiKey, principal.key_id)
    assert key is not None  # authenticate found it
    expires = now + SESSION_LIFETIME
    if key.expires_at is not None:
        expires = min(expires, key.expires_at)
    return _new_session(session, principal=principal, expires=expires, now=now)


def start_oidc_session(*, session: Session, principal: Principal, now: datetime | None = None) -> str:
    """Sign in the user an identity provider's ID token named (``console/oidc.py`` verified it and mapped it
    as the API maps bearer tokens): the new session's cookie secret. The session has no key; disabling the
    user or moving them to a role without console pages ends it as it ends a key's session."""
    if principal.role not in CONSOLE_ROLES:
        raise AuthenticationError(f"the role {principal.role.value!r} has no console pages: use the API or the CLI")
    now = now or utcnow()
    return _new_session(session, principal=principal, expires=now + SESSION_LIFETIME, now=now)


def _new_session(session: Session, *, principal: Principal, expires: datetime, now: datetime) -> str:
    session.execute(delete(ConsoleSession).where(
        or_(ConsoleSession.expires_at < now - ENDED_KEPT, ConsoleSession.revoked_at < now - ENDED_KEPT)))
    secret = secrets.token_urlsafe(32)
    session.add(ConsoleSession(id_sha256=_digest(secret), user_id=principal.user_id, key_id=principal.key_id,
                               csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=expires))
    session.commit()
    return secret


def resume_session(*, session: Session, secret: str, now: datetime | None = None) -> ConsoleUser | None:
    """The signed-in user of the session with this cookie secret, or ``None`` when it has ended.

    A session whose key was revoked or expired, whose user was disabled or lost every console role is ended
    (``revoked_at``) here, so it cannot come back when the key or user does.
    """
    if not secret or len(secret) > 200:
        return None
    now = now or utcnow()
    row = session.execute(
        select(ConsoleSession, ApiKey, User)
        .outerjoin(ApiKey, ApiKey.id == ConsoleSession.key_id)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.id_sha256 == _digest(secret), ConsoleSession.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    console_session, key, user = row
    live = (
        console_session.expires_at > now
        and (console_session.key_id is None or (
            key is not None
            and key.revoked_at is None
            and (key.expires_at is None or key.expires_at > now)
            and key.user_id == user.id))
        and not user.disabled
        and user.role in {role.value for role in CONSOLE_ROLES}
    )
    if not live:
        console_session.revoked_at = now
        session.commit()
        return None
    flash, flash_ok = console_session.flash, console_session.flash_ok
    if flash is not None:
        console_session.flash = None
        session.commit()
    return ConsoleUser(
        principal=Principal(user_id=user.id, role=Role(user.role), tenant_id=user.tenant_id,
                            key_id=key.id if key is not None else None),
        display_name=user.display_name,
        session_id=console_session.id_sha256,
        csrf_token=console_session.csrf_token,
        flash=flash,
        flash_ok=flash_ok,
    )


def end_session(*, session: Session, session_id: str, now: datetime | None = None) -> None:
    session.execute(update(ConsoleSession).where(ConsoleSession.id_sha256 == session_id,
                                                 ConsoleSession.revoked_at.is_(None))
                    .values(revoked_at=now or utcnow()))
    session.commit()


def set_flash(*, session: Session, session_id: str, message: str, ok: bool = True) -> None:
    """Leave ``message`` for the next page this session reads."""
    session.execute(update(ConsoleSession).where(ConsoleSession.id_sha256 == session_id)
                    .values(flash=message[:2000], flash_ok=ok))
    session.commit()


def csrf_matches(expected: str, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(expected.encode(), (offered or "").encode())
