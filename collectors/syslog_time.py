"""Syslog timestamps, a batch at a time: ISO-8601 (RFC 5424, rsyslog's high-precision file format) and the
year-less BSD form (`Dec 10 06:55:46`), resolved to UTC with Arrow compute functions.

Missing-year rule: a year-less time takes `year` when given; otherwise the year of its reference (the
`reference` option, else the record's own arrival time; a file's modification time when a file is read),
and the year before when that would put the event more than one day after the reference. A time without
a zone is wall-clock time in `tz` (UTC unless told otherwise). A date that exists in none of the candidate
years (29 February in 2023), a clock past 23:59:59, and a time outside years 1-9999 once in UTC are refused
with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from collectors.columns import TIMESTAMP, valid_time

MONTHS = pa.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
NAIVE = pa.timestamp("us")
_CLOCK = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
ISO_PARTS = (r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<clock>[0-9]{2}:[0-9]{2}:[0-9]{2})"
             r"(?P<fraction>\.[0-9]{1,9})?(?P<zone>Z|z|[+-][0-9]{2}:?[0-9]{2})?$")
_MICROSECONDS_PER_MINUTE = 60_000_000


def _int(values: Any) -> Any:
    """Decimal digits -> int64, null for anything else (empty groups of a regex included)."""
    digits = pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.utf8_length(values), 18))  # ^[0-9]{1,18}$
    return pc.cast(pc.if_else(digits, values,
                              pa.scalar(None, pa.string())), pa.int64())


def _micros(fraction: pa.Array) -> pa.Array:
    """`.123` -> 123000 (microseconds); digits past the sixth are dropped; empty or null -> 0."""
    digits = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.utf8_slice_codeunits(fraction, 1), width=6, padding="0"), 0, 6)
    return pc.fill_null(_int(digits), 0)


def _as_utc(naive_us: pa.Array, tz: tzinfo) -> pa.Array:
    """Wall-clock microseconds in `tz` -> UTC timestamps."""
    offset = tz.utcoffset(None) if isinstance(tz, timezone) else None
    if tz is UTC or offset == timedelta(0):
        return pc.cast(naive_us, TIMESTAMP)
    if offset is not None:
        return pc.cast(pc.subtract(naive_us, int(offset / timedelta(microseconds=1))), TIMESTAMP)
    if isinstance(tz, ZoneInfo):
        local = pc.assume_timezone(pc.cast(naive_us, NAIVE), timezone=tz.key, ambiguous="earliest",
                                   nonexistent="earliest")
        return pc.cast(local, TIMESTAMP)
    moments = [None if value is None else _python_utc(value, tz) for value in naive_us.to_pylist()]
    return pa.array(moments, TIMESTAMP)


def _python_utc(micros: int, tz: tzinfo) -> datetime | None:
    try:
        wall = datetime(1970, 1, 1) + timedelta(microseconds=micros)
        return wall.replace(tzinfo=tz).astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _checked_wall_time(dates: pa.Array, clocks: pa.Array, year: pa.Array, month: pa.Array,
                       day: pa.Array) -> pa.Array:
    """`YYYY-MM-DD` + `HH:MM:SS` as naive microseconds, null where the date or the clock does not exist
    (strptime rolls 29 February 2023 over to 1 March: the parts are compared back)."""
    parsed = pc.strptime(pc.binary_join_element_wise(dates, clocks, " "), format="%Y-%m-%d %H:%M:%S", unit="us",
                         error_is_null=True)
    exists = pc.and_kleene(pc.and_kleene(pc.equal(pc.year(parsed), year), pc.equal(pc.month(parsed), month)),
                           pc.equal(pc.day(parsed), day))
    exists = pc.and_kleene(exists, pc.match_substring_regex(clocks, _CLOCK))
    return pc.cast(pc.if_else(pc.fill_null(exists, False), parsed, pa.scalar(None, NAIVE)), pa.int64())


def parse_iso(values: pa.Array, *, tz: tzinfo) -> pa.Array:
    """ISO-8601 strings -> UTC timestamps; null where the text is not ISO-8601 or the time cannot be stored."""
    parts = pc.extract_regex(values, ISO_PARTS)
    dates, clocks = parts.field("date"), parts.field("clock")
    year = _int(pc.utf8_slice_codeunits(dates, 0, 4))
    month = _int(pc.utf8_slice_codeunits(dates, 5, 7))
    day = _int(pc.utf8_slice_codeunits(dates, 8, 10))
    wall = pc.add(_checked_wall_time(dates, clocks, year, month, day), _micros(parts.field("fraction")))
    zone = parts.field("zone")
    sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
    digits = pc.replace_substring(pc.utf8_slice_codeunits(zone, 1), ":", "")
    hours = _int(pc.utf8_slice_codeunits(digits, 0, 2))
    minutes = _int(pc.utf8_slice_codeunits(digits, 2, 4))
    offset = pc.multiply(pc.multiply(sign, pc.add(pc.multiply(hours, 60), minutes)), _MICROSECONDS_PER_MINUTE)
    has_offset = pc.and_(pc.invert(pc.equal(zone, "")), pc.invert(pc.is_in(zone, pa.array(["Z", "z"]))))
    with_zone = pc.cast(pc.subtract(wall, pc.if_else(has_offset, offset, 0)), TIMESTAMP)
    local = _as_utc(wall, tz)
    moments = pc.if_else(pc.equal(zone, ""), local, with_zone)
    moments = pc.if_else(parts.is_valid(), moments, pa.scalar(None, TIMESTAMP))
    return pc.if_else(pc.fill_null(valid_time(moments), False), moments, pa.scalar(None, TIMESTAMP))


def resolve_yearless(month_names: pa.Array, days: pa.Array, clocks: pa.Array, fractions: pa.Array, *,
                     year: int | None, reference: Any, tz: tzinfo) -> pa.Array:
    """`Dec` `10` `06:55:46` `.123` -> UTC timestamps by the missing-year rule; null where no candidate year
    has that date. `reference` is one aware datetime or an array of UTC timestamps (one per row).

    A batch's lines share few distinct times (a log writes many lines a second): when the references share
    one year, each distinct time is resolved once and the result spread back to its rows."""
    if len(days) >= _DISTINCT_AT_LEAST:
        distinct = _distinct_times(month_names, days, clocks, fractions)
        if distinct is not None:
            parts, rows = distinct
            if year is not None:
                return _resolve_each(*parts, year=year, reference=None, tz=tz).take(rows)
            if isinstance(reference, datetime):
                return _resolve_each(*parts, year=None, reference=reference, tz=tz).take(rows)
            years = pc.min_max(pc.year(reference))
            if not reference.null_count and years["min"].as_py() == years["max"].as_py():
                this_year = years["min"].as_py()  # the rule of `_resolve_each`, its candidates per distinct time
                first = _resolve_each(*parts, year=this_year, reference=None, tz=tz).take(rows)
                latest = pc.add(reference, pa.scalar(timedelta(days=1), pa.duration("us")))
                usable = pc.fill_null(pc.less_equal(first, latest), False)
                if pc.all(usable).as_py():
                    return first
                previous = _resolve_each(*parts, year=this_year - 1, reference=None, tz=tz).take(rows)
                return pc.if_else(usable, first, previous)
    return _resolve_each(month_names, days, clocks, fractions, year=year, reference=reference, tz=tz)


_DISTINCT_AT_LEAST = 64  # rows below which resolving each row costs less than finding the distinct times


def _distinct_times(month_names: pa.Array, days: pa.Array, clocks: pa.Array,
                    fractions: pa.Array) -> tuple[tuple[pa.Array, pa.Array, pa.Array, pa.Array], pa.Array] | None:
    """The distinct (month, day, clock, fraction) of the rows, as four arrays, and each row's index among them;
    None when most rows differ (nothing to save). The parts hold no space (the header's groups)."""
    joined = pc.binary_join_element_wise(month_names, days, clocks, fractions, " ")
    if joined.null_count:
        return None
    encoded = pc.dictionary_encode(joined)
    if len(encoded.dictionary) * 2 > len(joined):
        return None
    split = pc.split_pattern(encoded.dictionary, " ")
    parts = tuple(pc.list_element(split, index) for index in range(4))
    return (parts[0], parts[1], parts[2], parts[3]), encoded.indices


def _resolve_each(month_names: pa.Array, days: pa.Array, clocks: pa.Array, fractions: pa.Array, *,
                  year: int | None, reference: Any, tz: tzinfo) -> pa.Array:
    month = pc.add(pc.index_in(month_names, value_set=MONTHS), 1)
    day = _int(days)
    tail = pc.binary_join_element_wise(
        "-", pc.utf8_lpad(pc.cast(month, pa.string()), width=2, padding="0"),
        "-", pc.utf8_lpad(days, width=2, padding="0"), "")
    micros = _micros(fractions)

    def candidate(years: Any) -> pa.Array:
        text_years = pc.utf8_lpad(pc.cast(years, pa.string()), width=4, padding="0")
        if isinstance(years, pa.Scalar):
            years = pa.repeat(years, len(days))
            text_years = pa.repeat(text_years, len(days))
        dates = pc.binary_join_element_wise(text_years, tail, "")
        wall = pc.add(_checked_wall_time(dates, clocks, years, month, day), micros)
        moments = _as_utc(wall, tz)
        return pc.if_else(pc.fill_null(valid_time(moments), False), moments, pa.scalar(None, TIMESTAMP))

    if year is not None:
        return candidate(pa.scalar(year, pa.int64()))
    if isinstance(reference, datetime):
        reference = reference if reference.tzinfo else reference.replace(tzinfo=tz)
        reference = pa.scalar(reference.astimezone(UTC), TIMESTAMP)
    latest = pc.add(reference, pa.scalar(timedelta(days=1), pa.duration("us")))
    this_year = pc.cast(pc.year(reference), pa.int64())
    first = candidate(this_year)
    usable = pc.fill_null(pc.less_equal(first, latest), False)
    if pc.all(usable).as_py():
        return first
    previous = candidate(pc.subtract(this_year, 1))
    return pc.if_else(usable, first, previous)
