"""Alerts posted by the correlator, and the JSON contract they follow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.cases.models import Case
from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant, TenantId

SigmaLevel = Literal["informational", "low", "medium", "high", "critical"]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_timestamp", "tenant_id", "timestamp"),)

    # Deterministic id from the correlator (hash of rule and events): replays are no-ops.
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id))
    # None while the alert is held as entity risk only (below the risk threshold, in no open case).
    case_id: Mapped[int | None] = mapped_column(ForeignKey(Case.id), index=True, nullable=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    rule_title: Mapped[str] = mapped_column(String(500))
    rule_level: Mapped[str] = mapped_column(String(16))
    rule_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    # Time of the alert's last event (``event.end``): a correlation's ``@timestamp`` is its window's start.
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    event_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    entities: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    group_key: Mapped[str] = mapped_column(String(512))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AlertOrganization(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: TenantId


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    level: SigmaLevel = "medium"
    tags: list[str] = Field(default_factory=list)


class AlertEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    ids: list[str] = Field(default_factory=list)
    dataset: str | None = None
    end: datetime | None = Field(default=None, description="Time of the last event (ECS `event.end`)")

    @field_validator("end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class AlertIncident(BaseModel):
    """How the alert's rule groups alerts into cases: the rule's ``citysoc: {group_by, window}``."""

    model_config = ConfigDict(extra="forbid")

    group_by: list[str] | None = Field(
        default=None, max_length=16, description="Entity fields whose values alerts share to join one case"
    )
    window_seconds: int | None = Field(
        default=None, ge=60, le=30 * 86400, description="How far apart in event time alerts of one case may be"
    )


class AlertIn(BaseModel):
    """One alert as the correlator posts it. Unknown keys are kept in the stored document."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    timestamp: datetime = Field(alias="@timestamp")
    organization: AlertOrganization
    rule: AlertRule
    event: AlertEvent = Field(default_factory=AlertEvent)
    entities: dict[str, list[str]] = Field(default_factory=dict)
    group_key: str | None = Field(default=None, min_length=1, max_length=512)
    incident: AlertIncident = Field(default_factory=AlertIncident)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @model_validator(mode="after")
    def _end_not_before_start(self) -> AlertIn:
        if self.event.end is not None and self.event.end < self.timestamp:
            raise ValueError("event.end is before @timestamp: the last event cannot precede the first")
        return self

    @field_validator("entities", mode="before")
    @classmethod
    def _entity_values_as_lists(cls, value: Any) -> Any:
        # ECS fields may hold one value or many; store them uniformly as lists of strings.
        if not isinstance(value, dict):
            return value
        return {
            field: [str(v) for v in (values if isinstance(values, list) else [values])]
            for field, values in value.items()
            if values is not None
        }

    @property
    def tenant_id(self) -> str:
        return self.organization.id

    @property
    def last_seen(self) -> datetime:
        """Time of the alert's last event: ``event.end`` when given, else ``@timestamp``."""
        return self.event.end or self.timestamp

    def document(self) -> dict[str, Any]:
        """The alert as posted (extra keys included), for the ``document`` column."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class AlertBatchIn(BaseModel):
    alerts: list[AlertIn] = Field(max_length=10_000)


class AlertBatchOut(BaseModel):
    created: int
    duplicates: int
    cases: list[int] = Field(description="Ids of the cases the new alerts were added to")
    pending: int = Field(
        default=0, description="New alerts held as entity risk only: below the risk threshold and in no open case"
    )


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    case_id: int | None
    rule_id: str
    rule_title: str
    rule_level: str
    rule_tags: list[str]
    timestamp: datetime
    last_seen: datetime
    event_ids: list[str]
    entities: dict[str, list[str]]
    group_key: str
    document: dict[str, Any]
    received_at: datetime
