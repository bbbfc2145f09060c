"""Cases, their workflow and their append-only audit trail."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    SQLColumnExpression,
    String,
    case,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant


class CaseStatus(enum.StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    AWAITING_MEMBER = "awaiting_member"  # waiting on the member: the SLA clocks are paused
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def is_open(self) -> bool:
        return self not in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({CaseStatus.RESOLVED, CaseStatus.CLOSED})

# The case workflow. ``closed`` is final: new alerts for the group open a new case instead.
# ``resolved`` may be reopened (back to ``in_progress``) while no other case is open for its group.
# ``awaiting_member`` pauses the SLA clocks (case_api/sla/clocks.py); ``on_hold`` does not: a hold the SOC
# chose is the SOC's time.
ALLOWED_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.NEW: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.ON_HOLD, CaseStatus.AWAITING_MEMBER,
                               CaseStatus.RESOLVED, CaseStatus.CLOSED}),
    CaseStatus.IN_PROGRESS: frozenset({CaseStatus.ON_HOLD, CaseStatus.AWAITING_MEMBER, CaseStatus.RESOLVED,
                                       CaseStatus.CLOSED}),
    CaseStatus.ON_HOLD: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_MEMBER, CaseStatus.RESOLVED,
                                   CaseStatus.CLOSED}),
    CaseStatus.AWAITING_MEMBER: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.ON_HOLD, CaseStatus.RESOLVED,
                                           CaseStatus.CLOSED}),
    CaseStatus.RESOLVED: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
}


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_ORDER.index(self)

    @classmethod
    def from_sigma_level(cls, level: str) -> Severity:
        """Sigma ``informational`` counts as ``low``; the other levels map by name."""
        return cls.LOW if level == "informational" else cls(level)


SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


class Resolution(enum.StrEnum):
    """Why a case was closed (required to close one)."""

    TRUE_POSITIVE = "true_positive"
    BENIGN = "benign"  # real activity, but expected or authorised
    FALSE_POSITIVE = "false_positive"
    DUPLICATE = "duplicate"  # merged into another case


#: Urgency of a case (Splunk ES): its severity against the tenant's asset criticality, P1 most urgent.
PRIORITY_MATRIX: dict[Severity, dict[Severity, str]] = {
    # criticality -> severity -> priority
    Severity.LOW: {Severity.LOW: "P4", Severity.MEDIUM: "P4", Severity.HIGH: "P3", Severity.CRITICAL: "P2"},
    Severity.MEDIUM: {Severity.LOW: "P4", Severity.MEDIUM: "P3", Severity.HIGH: "P2", Severity.CRITICAL: "P1"},
    Severity.HIGH: {Severity.LOW: "P3", Severity.MEDIUM: "P2", Severity.HIGH: "P1", Severity.CRITICAL: "P1"},
    Severity.CRITICAL: {Severity.LOW: "P2", Severity.MEDIUM: "P1", Severity.HIGH: "P1", Severity.CRITICAL: "P1"},
}


def priority(severity: Severity, criticality: Severity) -> str:
    return PRIORITY_MATRIX[criticality][severity]

class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # A group may have several open cases (one per burst of activity, see case_api/incidents):
        # alerts are grouped under a per-tenant lock, not by a unique index.
        Index("ix_cases_tenant_group", "tenant_id", "group_key"),
        Index("ix_cases_queue", "tenant_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id))
    title: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.NEW.value)
    severity: Mapped[str] = mapped_column(String(16), default=Severity.LOW.value)
    group_key: Mapped[str] = mapped_column(String(512))
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ATT&CK technique ids (``T1110``, ``T1562.008``) from the case's alerts' tags.
    techniques: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # SLA clocks (case_api/sla/clocks.py): when each stopped, the pauses, and the due times they give.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sla_paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Closed pauses, ``[[start, end], ...]`` as ISO 8601 UTC.
    sla_pauses: Mapped[list[list[str]]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    acknowledge_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    triage_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The earliest due time of a running, unpaused clock: the queue's order (none: every clock stopped or paused).
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Optimistic concurrency: every change to the row adds one, and SQLAlchemy's UPDATE carries
    # ``WHERE version = <the version read>``, so a change made since the read fails instead of being
    # overwritten (the same on SQLite, where row locks do not exist, and PostgreSQL). Sent as the ETag.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it as declared)


# The queue's order and filter, written with literals rather than bound parameters: the queue indexes
# below are built on these very expressions, and PostgreSQL (like SQLite) uses an expression or partial
# index only for a query that states the identical expression, which a parameter would not be.
SEVERITY_RANK: ColumnElement[int] = case(
    *((Case.severity == literal_column(f"'{s.value}'"), literal_column(str(rank)))
      for rank, s in enumerate(SEVERITY_ORDER)),
    else_=literal_column("-1"),
)
CASE_IS_OPEN: ColumnElement[bool] = Case.status.not_in(
    [literal_column(f"'{s.value}'") for s in sorted(FINISHED_STATUSES)]
)
#: The queue's order: the next SLA due time (cases without one, every clock stopped or paused, last), then
#: the most severe, then the oldest. ``IS NULL`` first rather than ``NULLS LAST``: SQLite's indexes keep
#: NULLs first and cannot serve ``NULLS LAST``; this expression orders the same on both backends and is
#: indexed on both.
DUE_IS_UNSET: ColumnElement[bool] = Case.sla_due_at.is_(None)
QUEUE_ORDER: tuple[SQLColumnExpression[Any], ...] = (DUE_IS_UNSET, Case.sla_due_at, SEVERITY_RANK.desc(),
                                               Case.first_seen, Case.id)
# The open queue for the city (every tenant) and for one member: a page is read off the index instead of
# sorting every open case (bench/api.py).
Index("ix_cases_open_queue", DUE_IS_UNSET, Case.sla_due_at, SEVERITY_RANK.desc(), Case.first_seen, Case.id,
      postgresql_where=CASE_IS_OPEN, sqlite_where=CASE_IS_OPEN)
Index("ix_cases_open_queue_tenant", Case.tenant_id, DUE_IS_UNSET, Case.sla_due_at, SEVERITY_RANK.desc(),
      Case.first_seen, Case.id, postgresql_where=CASE_IS_OPEN, sqlite_where=CASE_IS_OPEN)


class CaseEvent(Base):
    """One line of a case's audit trail. Rows are only ever inserted."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CaseAction(enum.StrEnum):
    CREATED = "created"
    ALERT_ADDED = "alert_added"
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    SEVERITY_CHANGED = "severity_changed"
    COMMENTED = "commented"
    TASK_ADDED = "task_added"
    TASK_CHANGED = "task_changed"
    OBSERVABLE_ADDED = "observable_added"
    MERGED = "merged"  # other cases merged into this one
    MERGED_INTO = "merged_into"  # this case merged into another


class SlaClockOut(BaseModel):
    target_seconds: int = Field(description="The contract's target for the case's severity (running time)")
    due_at: datetime = Field(description="When the target is used up; while paused, when it would be if resumed now")
    done_at: datetime | None = Field(description="When the clock stopped (none: still running)")
    breached: bool = Field(description="Stopped after its due time, or still running past it")


class CaseSlaOut(BaseModel):
    """The case's SLA clocks as of the answer, from its tenant's contract (see case_api/sla/clocks.py)."""

    contract: str = Field(description="'tenant' (the member's own contract) or 'default'")
    calendar: str = Field(description="24x7, or business hours (time zone)")
    paused: bool = Field(description="Awaiting the member: the running clocks are paused")
    acknowledge: SlaClockOut
    triage: SlaClockOut
    resolve: SlaClockOut


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    title: str
    status: CaseStatus
    severity: Severity
    group_key: str
    alert_count: int
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    updated_at: datetime
    assignee: str | None
    resolution: Resolution | None
    merged_into_id: int | None
    techniques: list[str]
    closed_at: datetime | None
    acknowledged_at: datetime | None
    triaged_at: datetime | None
    resolved_at: datetime | None
    sla_due_at: datetime | None = Field(description="The next due time of a running, unpaused SLA clock: the "
                                        "queue's order")
    sla: CaseSlaOut | None = None
    priority: str = Field(
        default="", description="P1 (most urgent) to P4: severity against the tenant's asset criticality"
    )
    version: int = Field(description="Changes with every change to the case; sent as the ETag, expected in If-Match")


class CaseEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


class CasePatch(BoundedInput):
    """Fields a responder may change. ``assignee: null`` unassigns; closing needs a ``resolution``."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    resolution: Resolution | None = Field(default=None, description="Required with status closed")
    assignee: str | None = Field(default=None, max_length=200, description="A known user (an API key's name)")
    severity: Severity | None = Field(default=None, description="The analyst's assessment, replacing the alerts'")

    @model_validator(mode="after")
    def _status_not_null(self) -> CasePatch:
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null; leave it out to keep the current status")
        if "severity" in self.model_fields_set and self.severity is None:
            raise ValueError("severity cannot be null")
        if self.status is CaseStatus.CLOSED and self.resolution is None:
            raise ValueError("closing a case needs a resolution: true_positive, benign, false_positive or duplicate")
        if self.resolution is not None and self.status not in (CaseStatus.CLOSED, CaseStatus.RESOLVED):
            raise ValueError("a resolution goes with status resolved or closed")
        return self
