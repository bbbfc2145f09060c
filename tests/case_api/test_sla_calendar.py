"""SLA calendars and contracts: business-hours arithmetic across nights, weekends, holidays, daylight-saving
changes and pauses, checked against hand-worked cases; contracts validate with advice."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from case_api.cases.models import Severity
from case_api.sla.calendar import AlwaysOpen, BusinessHours, CalendarError, Weekday
from case_api.sla.models import DEFAULT_CONTRACT, CalendarSpec, Clock, SlaContract, parse_spans

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
WORKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
# 2026-12-07 is a Monday; 2026-12-25 a Friday.
OFFICE = BusinessHours(LONDON, {day: [(time(9), time(17))] for day in WORKDAYS}, holidays=[date(2026, 12, 25)])


def london(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=LONDON)  # type: ignore[misc]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.mark.parametrize(("start", "duration", "due"), [
    # Within one working day.
    (london(2026, 12, 7, 10, 0), hours(2), london(2026, 12, 7, 12, 0)),
    # Ending exactly at closing time is due at closing time, not at the next opening.
    (london(2026, 12, 7, 9, 0), hours(8), london(2026, 12, 7, 17, 0)),
    # Across the night: 2 h left on Monday, 2 h on Tuesday morning.
    (london(2026, 12, 7, 15, 0), hours(4), london(2026, 12, 8, 11, 0)),
    # Opened at night: the clock starts at the next opening.
    (london(2026, 12, 7, 22, 30), timedelta(minutes=15), london(2026, 12, 8, 9, 15)),
    (london(2026, 12, 8, 3, 0), hours(1), london(2026, 12, 8, 10, 0)),
    # Across the weekend: Friday 16:00 + 4 h is Monday 12:00.
    (london(2026, 12, 11, 16, 0), hours(4), london(2026, 12, 14, 12, 0)),
    # Opened on Saturday: Monday 09:00 + 1 h.
    (london(2026, 12, 12, 11, 0), hours(1), london(2026, 12, 14, 10, 0)),
    # A holiday (Friday 25 December) is skipped: Thursday 16:00 + 2 h is Monday 10:00.
    (london(2026, 12, 24, 16, 0), hours(2), london(2026, 12, 28, 10, 0)),
    # A whole working week: Monday 09:00 + 40 h is Friday 17:00.
    (london(2026, 12, 7, 9, 0), hours(40), london(2026, 12, 11, 17, 0)),
    # 41 h rolls over the weekend to Monday 10:00.
    (london(2026, 12, 7, 9, 0), hours(41), london(2026, 12, 14, 10, 0)),
])
def test_business_hours_due_times(start: datetime, duration: timedelta, due: datetime) -> None:
    assert OFFICE.add(start, duration) == due
    assert OFFICE.elapsed(start, due) == duration


@pytest.mark.parametrize(("start", "end", "expected"), [
    (london(2026, 12, 7, 8, 0), london(2026, 12, 7, 18, 0), hours(8)),  # a whole day, opened before, ends after
    (london(2026, 12, 11, 12, 0), london(2026, 12, 14, 12, 0), hours(8)),  # Friday noon to Monday noon
    (london(2026, 12, 12, 0, 0), london(2026, 12, 14, 0, 0), hours(0)),  # the weekend
    (london(2026, 12, 7, 17, 0), london(2026, 12, 8, 9, 0), hours(0)),  # one night
    (london(2026, 12, 21, 9, 0), london(2026, 12, 28, 9, 0), hours(32)),  # Christmas week: 4 days
    (london(2026, 12, 7, 12, 0), london(2026, 12, 7, 11, 0), hours(0)),  # end before start
])
def test_business_hours_elapsed(start: datetime, end: datetime, expected: timedelta) -> None:
    assert OFFICE.elapsed(start, end) == expected


def test_working_hours_are_local_across_daylight_saving_changes() -> None:
    # London leaves summer time on Sunday 2026-10-25: 09:00 is 08:00 UTC on Friday and 09:00 UTC on Monday.
    friday = london(2026, 10, 23, 16, 0)
    due = OFFICE.add(friday, hours(2))
    assert due == london(2026, 10, 26, 10, 0)
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 10, 0, tzinfo=UTC)
    assert friday.astimezone(UTC) == datetime(2026, 10, 23, 15, 0, tzinfo=UTC)
    # A round-the-clock business calendar counts the real hours of the 25-hour day.
    always = BusinessHours(LONDON, {day: [(time(0), None)] for day in Weekday})
    assert always.elapsed(london(2026, 10, 25, 0, 0), london(2026, 10, 26, 0, 0)) == hours(25)
    assert always.elapsed(london(2026, 3, 29, 0, 0), london(2026, 3, 30, 0, 0)) == hours(23)


def test_the_calendar_runs_in_the_members_time_zone() -> None:
    office = BusinessHours(NEW_YORK, {day: [(time(9), time(17))] for day in WORKDAYS})
    # 15:00 UTC on Monday 7 December is 10:00 in New York: 7 h left that day.
    start = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert office.add(start, hours(8)) == datetime(2026, 12, 8, 10, 0, tzinfo=NEW_YORK)
    # 23:00 UTC on Friday is 18:00 in New York, after closing: Monday 09:00 there.
    assert office.add(datetime(2026, 12, 11, 23, 0, tzinfo=UTC), hours(1)) == datetime(2026, 12, 14, 10, 0,
                                                                                        tzinfo=NEW_YORK)


def test_split_days_and_a_saturday_morning() -> None:
    shop = BusinessHours(LONDON, {
        **{day: [(time(8), time(12)), (time(13), time(17))] for day in WORKDAYS},
        Weekday.SAT: [(time(9), time(12))],
    })
    assert shop.add(london(2026, 12, 7, 11, 0), hours(2)) == london(2026, 12, 7, 14, 0)  # lunch does not count
    assert shop.add(london(2026, 12, 11, 16, 0), hours(3)) == london(2026, 12, 12, 11, 0)  # Friday -> Saturday
    assert shop.add(london(2026, 12, 12, 11, 0), hours(2)) == london(2026, 12, 14, 9, 0)  # Saturday -> Monday


def test_pauses_do_not_count() -> None:
    start = london(2026, 12, 7, 9, 0)
    # Waiting on the member from Monday 10:00 to 14:00: a 4 h target is due at 17:00, not 13:00.
    pauses = [(london(2026, 12, 7, 10, 0), london(2026, 12, 7, 14, 0))]
    assert OFFICE.add(start, hours(4), pauses) == london(2026, 12, 7, 17, 0)
    assert OFFICE.elapsed(start, london(2026, 12, 7, 17, 0), pauses) == hours(4)
    # A pause over a weekend only removes the working time in it (Friday 16:00 .. Monday 10:00 = 2 h):
    # Friday 09:00-16:00 runs 7 h, the 8th hour is Monday 10:00-11:00.
    weekend = [(london(2026, 12, 11, 16, 0), london(2026, 12, 14, 10, 0))]
    assert OFFICE.add(london(2026, 12, 11, 9, 0), hours(8), weekend) == london(2026, 12, 14, 11, 0)
    assert OFFICE.elapsed(london(2026, 12, 11, 9, 0), london(2026, 12, 14, 17, 0), weekend) == hours(14)
    # 24x7: pauses are removed second for second, overlapping ones once.
    always = AlwaysOpen()
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    overlapping = [(at + hours(1), at + hours(3)), (at + hours(2), at + hours(4)), (at + hours(6), at + hours(7))]
    assert always.add(at, hours(4), overlapping) == at + hours(8)
    assert always.elapsed(at, at + hours(8), overlapping) == hours(4)


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 30),
    pause_at=st.integers(min_value=0, max_value=60 * 24 * 10),
    pause_minutes=st.integers(min_value=0, max_value=60 * 24 * 5),
)
def test_add_and_elapsed_are_inverse(start: datetime, minutes: int, pause_at: int, pause_minutes: int) -> None:
    pause_start = start + timedelta(minutes=pause_at)
    pauses = [(pause_start, pause_start + timedelta(minutes=pause_minutes))]
    for calendar in (OFFICE, AlwaysOpen()):
        due = calendar.add(start, timedelta(minutes=minutes), pauses)
        assert due > start
        assert calendar.elapsed(start, due, pauses) == timedelta(minutes=minutes)
        # One second earlier the time is not used up yet.
        assert calendar.elapsed(start, due - timedelta(seconds=1), pauses) < timedelta(minutes=minutes)


def test_a_calendar_without_working_time_is_refused() -> None:
    with pytest.raises(CalendarError, match="at least one weekday"):
        BusinessHours(LONDON, {})
    one_day = BusinessHours(LONDON, {Weekday.MON: [(time(9), time(17))]},
                            holidays=[date(2026, 12, 7) + timedelta(weeks=n) for n in range(400)])
    with pytest.raises(CalendarError, match="no working time"):
        one_day.add(london(2026, 12, 7, 9, 0), hours(1))


def test_contract_parsing_and_advice() -> None:
    contract = SlaContract.model_validate({
        "calendar": {"kind": "business_hours", "timezone": "Europe/London",
                     "hours": {"mon": "08:00-18:00", "sat": "09:00-12:00,13:00-24:00"}, "holidays": ["2026-12-25"]},
        "targets": {s: {"acknowledge": "15m", "triage": 3600, "resolve": "2d"} for s in ("low", "medium", "high",
                                                                                       "critical")},
    })
    assert contract.target(Severity.HIGH, Clock.TRIAGE) == hours(1)
    assert contract.model_dump(mode="json")["targets"]["high"] == {"acknowledge": "15m", "triage": "1h",
                                                                    "resolve": "2d"}
    calendar = contract.calendar.calendar()
    assert calendar.add(london(2026, 12, 12, 23, 0), hours(1)) == london(2026, 12, 13, 0, 0)  # 24:00 closes
    assert calendar.add(london(2026, 12, 12, 23, 30), hours(1)) == london(2026, 12, 14, 8, 30)  # then Monday
    assert parse_spans("13:00-24:00,09:00-12:00") == [(time(9), time(12)), (time(13), None)]

    def refused(document: dict[str, object]) -> str:
        with pytest.raises(ValidationError) as raised:
            SlaContract.model_validate(document)
        return str(raised.value)

    targets = DEFAULT_CONTRACT.model_dump(mode="json")["targets"]
    without_critical = {k: v for k, v in targets.items() if k != "critical"}
    assert "missing for severity critical" in refused({"targets": without_critical})
    assert "acknowledge <= triage <= resolve" in refused(
        {"targets": {**targets, "high": {"acknowledge": "4h", "triage": "1h", "resolve": "1d"}}})
    assert "not a duration" in refused({"targets": {**targets, "low": {"acknowledge": "soon", "triage": "1h",
                                                                         "resolve": "1d"}}})
    assert "at most 365 days" in refused({"targets": {**targets, "low": {"acknowledge": "1h", "triage": "1h",
                                                                           "resolve": "400d"}}})
    assert "unknown time zone" in refused({"calendar": {"kind": "business_hours", "timezone": "Mars/Olympus",
                                                        "hours": {"mon": "09:00-17:00"}}, "targets": targets})
    assert "at least one weekday" in refused({"calendar": {"kind": "business_hours"}, "targets": targets})
    assert "closes before it opens" in refused({"calendar": {"kind": "business_hours",
                                                             "hours": {"mon": "18:00-08:00"}}, "targets": targets})
    assert "overlapping" in refused({"calendar": {"kind": "business_hours",
                                                  "hours": {"mon": "08:00-12:00,11:00-13:00"}}, "targets": targets})
    assert "HH:MM-HH:MM" in refused({"calendar": {"kind": "business_hours", "hours": {"mon": "9-5"}},
                                     "targets": targets})
    assert "24x7 calendar has no working hours" in refused({"calendar": {"hours": {"mon": "09:00-17:00"}},
                                                            "targets": targets})
    assert "Input should be" in refused({"calendar": {"kind": "business_hours", "hours": {"funday": "09:00-17:00"}},
                                         "targets": targets})
    assert CalendarSpec().describe() == "24x7"
