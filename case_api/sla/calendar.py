"""SLA calendars: when an SLA clock runs.

A calendar yields the intervals in which its clock runs (in UTC, ascending, never overlapping); every
SLA computation is a walk over those intervals with the case's pauses cut out: :meth:`SlaCalendar.add`
finds the moment a running time is used up (a due time), :meth:`SlaCalendar.elapsed` measures the
running time between two moments. ``24x7`` runs always; ``business_hours`` runs on the working hours of
each weekday in the member's time zone (``zoneinfo``), except on its holidays. Working hours are local
wall-clock times, so a 08:00-18:00 day is 08:00-18:00 on both sides of a daylight-saving change.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]

#: Business calendars look this far ahead for working time before giving up (a contract whose holidays
#: cover every working day would otherwise never come due).
HORIZON_DAYS = 366 * 5
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
ZERO = timedelta(0)


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """Monday 0 .. Sunday 6, as ``date.weekday()``."""
        return list(Weekday).index(self)


class CalendarError(ValueError):
    """A calendar that cannot be computed with (no working time within the horizon)."""


class SlaCalendar(ABC):
    """When a clock runs. Subclasses give the running intervals; the arithmetic is shared."""

    @abstractmethod
    def intervals(self, start: datetime) -> Iterator[Interval]:
        """Running intervals from ``start`` on (UTC, ascending, disjoint), the first one clipped to ``start``."""

    def add(self, start: datetime, duration: timedelta, pauses: Sequence[Interval] = ()) -> datetime:
        """The moment ``duration`` of running time after ``start`` is used up, ``pauses`` not counting.

        A duration that ends exactly at a closing time is due at that closing time, not at the next opening.
        """
        remaining = duration
        for opened, closed in without_pauses(self.intervals(start), pauses):
            span = closed - opened
            if remaining <= span:
                return opened + remaining
            remaining -= span
        raise CalendarError("the calendar has no working time left")  # pragma: no cover (intervals never end)

    def elapsed(self, start: datetime, end: datetime, pauses: Sequence[Interval] = ()) -> timedelta:
        """Running time between ``start`` and ``end``, ``pauses`` not counting."""
        total = ZERO
        if end <= start:
            return total
        for opened, closed in without_pauses(self.intervals(start), pauses):
            if opened >= end:
                break
            total += min(closed, end) - opened
        return total


class AlwaysOpen(SlaCalendar):
    """24/7: the clock runs every second."""

    name = "24x7"

    def intervals(self, start: datetime) -> Iterator[Interval]:
        yield start.astimezone(UTC), FOREVER

    def __repr__(self) -> str:
        return "AlwaysOpen()"


class BusinessHours(SlaCalendar):
    """Working hours per weekday in one time zone, minus holidays (local dates)."""

    name = "business_hours"

    def __init__(
        self,
        zone: ZoneInfo,
        hours: Mapping[Weekday, Sequence[tuple[time, time | None]]],
        holidays: Iterable[date] = (),
    ) -> None:
        """``hours``: per weekday, local (open, close) pairs; a close of ``None`` is midnight at the day's end."""
        self.zone = zone
        self.by_weekday: dict[int, list[tuple[time, time | None]]] = {
            day.number: sorted(spans, key=lambda span: span[0]) for day, spans in hours.items() if spans
        }
        if not self.by_weekday:
            raise CalendarError("business hours need working hours on at least one weekday")
        self.holidays = frozenset(holidays)

    def intervals(self, start: datetime) -> Iterator[Interval]:
        start = start.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        last = day + timedelta(days=HORIZON_DAYS)
        while day <= last:
            for opened, closed in self._day(day):
                if closed > start:
                    yield max(opened, start), closed
            day += timedelta(days=1)
        raise CalendarError(f"no working time within {HORIZON_DAYS} days: check the working hours and holidays")

    def _day(self, day: date) -> Iterator[Interval]:
        """The day's working intervals in UTC (local wall-clock hours on that date)."""
        if day in self.holidays:
            return
        for opened, closed in self.by_weekday.get(day.weekday(), ()):
            start = datetime.combine(day, opened, tzinfo=self.zone).astimezone(UTC)
            end = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
                if closed is None
                else datetime.combine(day, closed, tzinfo=self.zone)
            ).astimezone(UTC)
            if end > start:  # a span inside a skipped daylight-saving hour has no time in it
                yield start, end

    def __repr__(self) -> str:
        return f"BusinessHours({self.zone.key!r}, {len(self.by_weekday)} days, {len(self.holidays)} holidays)"


def without_pauses(intervals: Iterable[Interval], pauses: Sequence[Interval]) -> Iterator[Interval]:
    """``intervals`` with every pause cut out of them (pauses in any order, possibly overlapping)."""
    ordered = sorted(pauses)
    for opened, closed in intervals:
        cursor = opened
        for paused, resumed in ordered:
            if resumed <= cursor:
                continue
            if paused >= closed:
                break
            if paused > cursor:
                yield cursor, paused
            cursor = max(cursor, resumed)
            if cursor >= closed:
                break
        if cursor < closed:
            yield cursor, closed
