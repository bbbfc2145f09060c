"""Notifications: each member's contacts, the outbox of messages to deliver, and the log of delivery attempts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.cases.models import Case
from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant

EMAIL_PATTERN = r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$"


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class NotificationEvent(enum.StrEnum):
    """What a notification is about (the webhook payload's `type`)."""

    CASE_OPENED = "case.opened"  # a case of high or critical severity
    SLA_BREACHED = "case.sla_breached"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    SENT = "sent"  # the peer accepted it (SMTP 250, HTTP 2xx)
    FAILED = "failed"  # every attempt failed, or its contact was removed


class TenantContact(Base):
    """Where a member wants to hear about its cases: an email address or a webhook URL with its signing secret."""

    __tablename__ = "tenant_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(2048))
    #: Standard Webhooks signing secret (`whsec_<base64>`); the sender needs it in clear. Never in an answer
    #: after the one that created it, never in a log line.
    secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class Notification(Base):
    """One message to one destination: the outbox row, written in the transaction of what it reports."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: One message per (event, case, clock, destination): enqueueing it again is a no-op.
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), index=True)
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    #: `tenant` (a member's contact, by `contact_id`) or `soc` (the SOC's, from the settings).
    audience: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set while one sender holds it; a sender that died leaves it to expire, and the message is tried again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class NotificationAttempt(Base):
    """The delivery log: one row per attempt, with what the peer answered (never a secret or a URL)."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey(Notification.id), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ok: Mapped[bool]
    detail: Mapped[str] = mapped_column(String(500))


class ContactIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    address: str = Field(min_length=3, max_length=2048,
                         description="An email address, or the https:// (or http://) URL a webhook is posted to")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return value.strip()


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    channel: Channel
    address: str
    created_at: datetime
    created_by: str


class ContactCreated(ContactOut):
    secret: str | None = Field(
        description="Webhooks: the Standard Webhooks signing secret (`whsec_...`), shown this once; verify the "
        "`webhook-signature` header with it"
    )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    ok: bool
    detail: str


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    case_id: int
    event: NotificationEvent
    channel: Channel
    audience: str
    address: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    log: list[AttemptOut] = Field(default_factory=list, description="Every attempt, oldest first")
