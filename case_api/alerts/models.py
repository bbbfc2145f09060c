"""Alerts posted by the correlator, and the JSON contract they follow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.cases.models import Case
from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant, TenantId

SigmaLevel = Literal["informational", "low", "medium", "high", "critical"]

#: Alerts in one posted batch.
MAX_BATCH_ALERTS = 10_000
#: Entity fields of one alert, values per field and characters per value.
MAX_ENTITY_FIELDS = 64
MAX_ENTITY_VALUES = 100
MAX_ENTITY_VALUE_LENGTH = 1024
#: Matched event ids of one alert (the correlator keeps the first 100 of a window).
MAX_EVENT_IDS = 1000


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_timestamp", "tenant_id", "timestamp"),)

    # Deterministic id from the correlator (hash of rule and events): replays are no-ops. The key is
    # (tenant, id), so one tenant's alert can never shadow another's that happens to share its id.
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
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


class AlertOrganization(BoundedInput):
    model_config = ConfigDict(extra="allow")

    id: TenantId


class AlertRule(BoundedInput):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    level: SigmaLevel = "medium"
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)


class AlertEvent(BoundedInput):
    model_config = ConfigDict(extra="allow")

    ids: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=MAX_EVENT_IDS)
    dataset: str | None = Field(default=None, max_length=500)
    end: datetime | None = Field(default=None, description="Time of the last event (ECS `event.end`)")

    @field_validator("end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class AlertIncident(BaseModel):
    """How the alert's rule groups alerts into cases: the rule's ``citysoc: {group_by, window}``."""

    model_config = ConfigDict(extra="forbid")

    group_by: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None, max_length=16, description="Entity fields whose values alerts share to join one case"
    )
    window_seconds: int | None = Field(
        default=None, ge=60, le=30 * 86400, description="How far apart in event time alerts of one case may be"
    )


class AlertIn(BoundedInput):
    """One alert as the correlator posts it. Unknown keys are kept in the stored document."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    timestamp: datetime = Field(alias="@timestamp")
    organization: AlertOrganization
    rule: AlertRule
    event: AlertEvent = Field(default_factory=AlertEvent)
    entities: dict[
        Annotated[str, Field(max_length=100)],
        list[Annotated[str, Field(max_length=MAX_ENTITY_VALUE_LENGTH)]],
    ] = Field(default_factory=dict, max_length=MAX_ENTITY_FIELDS)
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
        as_lists = {
            field: [str(v) for v in (values if isinstance(values, list) else [values])]
            for field, values in value.items()
            if values is not None
        }
        for field, values in as_lists.items():
            if len(values) > MAX_ENTITY_VALUES:
                raise ValueError(f"entity {field!r} has {len(values):,} values, at most {MAX_ENTITY_VALUES}")
        return as_lists

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
    """A batch as posted. Each alert is validated on its own (see ``AlertIn``), so one bad alert is
    refused alone and the rest of the batch is stored."""

    alerts: list[dict[str, JsonValue]] = Field(max_length=MAX_BATCH_ALERTS)


class RejectedAlert(BaseModel):
    index: int = Field(description="Position of the alert in the posted batch")
    id: str | None = Field(description="The alert's id, if it had a readable one")
    tenant_id: str | None = Field(description="The alert's tenant, if it named one")
    reason: str


class AlertBatchOut(BaseModel):
    created: int
    duplicates: int
    cases: list[int] = Field(description="Ids of the cases the new alerts were added to")
    pending: int = Field(
        default=0, description="New alerts held as entity risk only: below the risk threshold and in no open case"
    )
    rejected: list[RejectedAlert] = Field(
        default_factory=list,
        description="Alerts refused (invalid, or of an unregistered tenant), each with the reason; "
        "the others were stored",
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
