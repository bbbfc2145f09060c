"""Console sign-in sessions: kept server-side, so signing out, a revoked or expired key and a disabled
user end them at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.auth.models import ApiKey, User
from case_api.db import Base, UTCDateTime, utcnow


class ConsoleSession(Base):
    """One signed-in browser. The cookie carries a random secret; the row keeps only its SHA-256."""

    __tablename__ = "console_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey(User.id), index=True)
    #: The API key signed in with: revoking it (or its expiry) ends the session. None: signed in with OIDC.
    key_id: Mapped[int | None] = mapped_column(ForeignKey(ApiKey.id), index=True, nullable=True)
    #: Sent in every form and compared on every POST (synchronizer token, bound to this session).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: One message for the next page (the outcome of the last action), shown once.
    flash: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    flash_ok: Mapped[bool] = mapped_column(Boolean, default=True)
