"""SLA contracts: per member, the time to acknowledge, triage and resolve a case of each severity, and
the calendar those times run on. Stored per tenant; a tenant without one has :data:`DEFAULT_CONTRACT`."""

from __future__ import annotations

import enum
import itertools
import re
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.cases.models import Severity
from case_api.db import Base, UTCDateTime, utcnow
from case_api.sla.calendar import AlwaysOpen, BusinessHours, SlaCalendar, Weekday
from case_api.tenants.models import Tenant
from citysoc.durations import Duration
from citysoc.retention import Retention

#: The longest target a contract may set.
MAX_TARGET = timedelta(days=365)
MAX_HOLIDAYS = 1000


class Clock(enum.StrEnum):
    """The three SLA clocks of a case; each starts when the case opens."""

    ACKNOWLEDGE = "acknowledge"  # stops at the first assignment, status or severity change
    TRIAGE = "triage"  # stops when the case leaves `new`
    RESOLVE = "resolve"  # stops when the case is resolved or closed


#: An SLA target: text such as `4h` or a number of seconds, more than zero and at most :data:`MAX_TARGET`.
Target = Annotated[
    timedelta,
    Duration(number_unit=timedelta(seconds=1), at_least=timedelta.resolution, at_most=MAX_TARGET,
             shape_error="a duration is text such as 15m, 4h or 2d, or a number of seconds",
             bounds_error=f"a target is more than 0 and at most {MAX_TARGET.days} days"),
    Field(description="Running time on the contract's calendar: 30s, 15m, 4h or 2d (or seconds)"),
]

_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_spans(text: str) -> list[tuple[time, time | None]]:
    """``08:00-18:00`` or ``08:00-12:00,13:00-17:00``; ``24:00`` closes at midnight. Spans may not overlap."""
    spans: list[tuple[time, time | None]] = []
    for part in text.split(","):
        found = _SPAN.match(part.strip())
        if not found:
            raise ValueError(f"{part.strip()!r} is not a span of working hours: write HH:MM-HH:MM, e.g. 08:00-18:00")
        oh, om, ch, cm = (int(g) for g in found.groups())
        if oh > 23 or om > 59 or cm > 59 or ch > 24 or (ch == 24 and cm):
            raise ValueError(f"{part.strip()!r} has a time that does not exist")
        opened, closed = time(oh, om), None if ch == 24 else time(ch, cm)
        if closed is not None and closed <= opened:
            raise ValueError(f"{part.strip()!r} closes before it opens (a span ends on its own day; 24:00 is midnight)")
        spans.append((opened, closed))
    spans.sort(key=lambda span: span[0])
    for (_, closed), (opened, _) in itertools.pairwise(spans):
        if closed is None or closed > opened:
            raise ValueError(f"{text!r} has overlapping spans")
    return spans


class CalendarSpec(BoundedInput):
    """When the clocks run: ``24x7``, or ``business_hours`` in a time zone with working hours per weekday."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["24x7", "business_hours"] = "24x7"
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone, e.g. Europe/London")
    hours: dict[Weekday, Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict,
        description="business_hours: local working hours per weekday, e.g. {\"mon\": \"08:00-18:00\"}; "
        "several spans with commas; a day not named is not worked",
    )
    holidays: list[date] = Field(default_factory=list, max_length=MAX_HOLIDAYS,
                                 description="business_hours: local dates not worked")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/London") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CalendarSpec:
        if self.kind == "24x7" and (self.hours or self.holidays):
            raise ValueError("a 24x7 calendar has no working hours or holidays: use kind business_hours")
        if self.kind == "business_hours":
            if not self.hours:
                raise ValueError("business_hours needs working hours for at least one weekday")
            for spans in self.hours.values():
                parse_spans(spans)
        return self

    def calendar(self) -> SlaCalendar:
        """The calendar to compute with, built once per contract read (clocks ask for it for every case)."""
        return self._compiled

    @cached_property
    def _compiled(self) -> SlaCalendar:
        if self.kind == "24x7":
            return AlwaysOpen()
        hours = {day: parse_spans(spans) for day, spans in self.hours.items()}
        return BusinessHours(ZoneInfo(self.timezone), hours, self.holidays)

    def describe(self) -> str:
        return "24x7" if self.kind == "24x7" else f"business hours ({self.timezone})"


class ClockTargets(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    acknowledge: Target
    triage: Target
    resolve: Target

    @model_validator(mode="after")
    def _in_order(self) -> ClockTargets:
        if not self.acknowledge <= self.triage <= self.resolve:
            raise ValueError("targets run in order: acknowledge <= triage <= resolve")
        return self

    def of(self, clock: Clock) -> timedelta:
        target: timedelta = getattr(self, clock.value)
        return target


class SlaContract(BoundedInput):
    """A member's SLA: per case severity, how long the SOC may take to acknowledge, triage and resolve."""

    model_config = ConfigDict(extra="forbid")

    calendar: CalendarSpec = Field(default_factory=CalendarSpec)
    targets: dict[Severity, ClockTargets] = Field(description="One entry per severity: low, medium, high, critical")
    retention: Retention | None = Field(
        default=None, description="How long the member's events are kept in the event store (Elasticsearch: its "
        "ILM policy); unset: the store's default (warm after 7d, deleted after 365d)")

    @model_validator(mode="after")
    def _every_severity(self) -> SlaContract:
        missing = [s.value for s in Severity if s not in self.targets]
        if missing:
            raise ValueError(f"targets are missing for severity {', '.join(missing)}")
        return self

    def target(self, severity: Severity, clock: Clock) -> timedelta:
        return self.targets[severity].of(clock)


#: Without a contract of its own a member gets this: the city SOC works 24/7.
DEFAULT_CONTRACT = SlaContract.model_validate({
    "calendar": {"kind": "24x7"},
    "targets": {
        "critical": {"acknowledge": "15m", "triage": "1h", "resolve": "4h"},
        "high": {"acknowledge": "1h", "triage": "4h", "resolve": "1d"},
        "medium": {"acknowledge": "4h", "triage": "1d", "resolve": "3d"},
        "low": {"acknowledge": "1d", "triage": "3d", "resolve": "10d"},
    },
})


class TenantContract(Base):
    """A member's own SLA contract (the JSON of :class:`SlaContract`)."""

    __tablename__ = "tenant_contracts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), primary_key=True)
    contract: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class ContractOut(BaseModel):
    tenant_id: str
    default: bool = Field(description="True when the member has no contract of its own and the default applies")
    contract: SlaContract
    updated_at: datetime | None = None
    updated_by: str | None = None
