"""Year-less times resolved once per distinct time (`resolve_yearless` on a batch) give what resolving every
row gives, whatever the reference: a year, one arrival time, or arrival times around New Year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from collectors.columns import TIMESTAMP
from collectors.syslog_time import _resolve_each, resolve_yearless

# Repeated times (as a log writes them), the days around New Year and 29 February, a clock past 23:59:59,
# fractions, and a day that exists in no year.
TIMES = [("Dec", "31", "23:59:59", ""), ("Jan", "1", "00:00:01", ".5"), ("Jan", "01", "00:00:01", ".5"),
         ("Feb", "29", "12:00:00", ""), ("Mar", "3", "24:00:00", ""), ("Jun", "31", "10:00:00", ""),
         ("Oct", "10", "10:10:10", ".123456789"), ("Dec", "30", "08:00:00", "")] * 20


def _columns() -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    return tuple(pa.array([row[part] for row in TIMES], pa.string()) for part in range(4))  # type: ignore[return-value]


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("Europe/Amsterdam")])
@pytest.mark.parametrize("reference", [
    datetime(2025, 1, 1, 0, 30, tzinfo=UTC),  # some times are last year's
    [datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC) + timedelta(seconds=n) for n in range(len(TIMES))],  # two years
    [datetime(2025, 1, 1, 0, 0, 2, tzinfo=UTC) + timedelta(seconds=n) for n in range(len(TIMES))],  # one year
    [datetime(2024, 6, 1, tzinfo=UTC)] * len(TIMES),  # a leap year
])
def test_distinct_times_resolve_as_every_row(reference: object, tz: ZoneInfo) -> None:
    months, days, clocks, fractions = _columns()
    given = pa.array(reference, TIMESTAMP) if isinstance(reference, list) else reference
    batch = resolve_yearless(months, days, clocks, fractions, year=None, reference=given, tz=tz)
    each = _resolve_each(months, days, clocks, fractions, year=None, reference=given, tz=tz)
    assert batch.equals(each)
    assert batch.null_count and batch.null_count < len(batch)  # some rows refused, most placed


def test_a_given_year_resolves_as_every_row() -> None:
    months, days, clocks, fractions = _columns()
    for year in (2023, 2024):
        batch = resolve_yearless(months, days, clocks, fractions, year=year, reference=None, tz=UTC)
        assert batch.equals(_resolve_each(months, days, clocks, fractions, year=year, reference=None, tz=UTC))
    placed = resolve_yearless(months, days, clocks, fractions, year=2024, reference=None, tz=UTC).to_pylist()
    assert placed[:2] == [datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 1, 500000,
                                                                                  tzinfo=UTC)]
