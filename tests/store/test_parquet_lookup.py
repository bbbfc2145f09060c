"""`ParquetEventStore.events_by_id`: one tenant's events by id, from the day folders of the given windows only,
across datasets, through compaction, never another tenant's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citysoc.errors import InvalidTenantIdError
from citysoc.store import ParquetEventStore
from citysoc.store.parquet import ROW_GROUP_ROWS
from tests.store.lake_helpers import DATASET, T0, events

DAY = timedelta(days=1)
WHOLE = [(T0 - 10 * DAY, T0 + 10 * DAY)]


def lake(tmp_path: Path) -> ParquetEventStore:
    return ParquetEventStore(tmp_path / "events")


def test_finds_the_ids_within_the_windows_days_across_datasets(tmp_path: Path) -> None:
    store = lake(tmp_path)
    store.write_table(tenant="council", dataset=DATASET, table=events(300, days=3))  # e0..e99 on T0's day
    store.write(tenant="council", dataset="aws.cloudtrail", events=[
        {"@timestamp": T0, "event": {"id": "ct-1", "original": '{"eventName":"StopLogging"}'},
         "cloud": {"account": {"id": "143434273843"}}}])
    found = store.events_by_id(tenant="council", ids=["e5", "e150", "e299", "ct-1", "nope"], windows=WHOLE)
    assert sorted(event["event"]["id"] for event in found) == ["ct-1", "e150", "e299", "e5"]
    trail = next(event for event in found if event["event"]["id"] == "ct-1")
    assert trail == {"@timestamp": T0.isoformat().replace("+00:00", "Z"),
                     "event": {"id": "ct-1", "original": '{"eventName":"StopLogging"}'},
                     "cloud": {"account": {"id": "143434273843"}}}  # absent fields and empty structs left out
    # a window covering the first day only reads that day's folder: e150 (day 2) is not looked for there
    first_day = [(T0.replace(hour=0), T0.replace(hour=0) + DAY)]
    assert [event["event"]["id"] for event in store.events_by_id(tenant="council", ids=["e5", "e150"],
                                                                  windows=first_day)] == ["e5"]
    assert store.events_by_id(tenant="council", ids=["e5"], windows=[]) == []
    assert store.events_by_id(tenant="council", ids=[], windows=WHOLE) == []
    # a window spanning more days than are probed one by one lists the tenant's folders instead: same answer
    decades = [(datetime(1990, 1, 1, tzinfo=UTC), datetime(2090, 1, 1, tzinfo=UTC))]
    assert len(store.events_by_id(tenant="council", ids=["e5", "e150", "ct-1"], windows=decades)) == 3


def test_only_the_tenants_own_events_come_back(tmp_path: Path) -> None:
    store = lake(tmp_path)
    store.write_table(tenant="school", dataset=DATASET, table=events(10))
    assert store.events_by_id(tenant="council", ids=["e1"], windows=WHOLE) == []
    # filed under the council but naming the school as its organisation: the school's, never the council's
    store.write(tenant="council", dataset=DATASET, events=[
        {"@timestamp": T0, "event": {"id": "x-1"}, "organization": {"id": "school"}},
        {"@timestamp": T0, "event": {"id": "x-2"}, "organization": {"id": "council"}}])
    assert [e["event"]["id"] for e in store.events_by_id(tenant="council", ids=["x-1", "x-2"], windows=WHOLE)] == [
        "x-2"]
    for bad in ("../school", "tenant=school", ""):
        with pytest.raises(InvalidTenantIdError):
            store.events_by_id(tenant=bad, ids=["e1"], windows=WHOLE)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.events_by_id(tenant="council", ids=["e1"], windows=[(datetime(2026, 3, 1), datetime(2026, 3, 4))])


def test_large_files_and_compacted_partitions_answer_the_same(tmp_path: Path) -> None:
    store = lake(tmp_path)
    wanted = ["e0", f"e{ROW_GROUP_ROWS + 7}", "e69999"]  # first and later row groups of one file
    store.write_table(tenant="council", dataset=DATASET, table=events(70_000))
    for start in range(70_000, 70_010):
        store.write_table(tenant="council", dataset=DATASET, table=events(1, start=start))
    before = store.events_by_id(tenant="council", ids=[*wanted, "e70003"], windows=WHOLE)
    assert store.compact(min_files=2) > 0
    after = store.events_by_id(tenant="council", ids=[*wanted, "e70003"], windows=WHOLE)
    key = sorted(event["event"]["id"] for event in before)
    assert key == sorted(event["event"]["id"] for event in after) == sorted([*wanted, "e70003"])


def test_row_groups_outside_the_windows_are_not_read(tmp_path: Path) -> None:
    """Within a day, a write of other seconds is skipped by its `@timestamp` statistics (a live day is many small
    files); the windows decide, not the day alone."""
    store = lake(tmp_path)
    morning, evening = T0.replace(hour=8), T0.replace(hour=20)
    store.write(tenant="council", dataset=DATASET, events=[{"@timestamp": morning, "event": {"id": "m"}}])
    store.write(tenant="council", dataset=DATASET, events=[{"@timestamp": evening, "event": {"id": "e"}}])
    around_morning = [(morning - timedelta(seconds=1), morning + timedelta(seconds=1))]
    assert [e["event"]["id"] for e in store.events_by_id(tenant="council", ids=["m", "e"],
                                                          windows=around_morning)] == ["m"]
    both = [*around_morning, (evening, evening + timedelta(milliseconds=1))]
    assert sorted(e["event"]["id"] for e in store.events_by_id(tenant="council", ids=["m", "e"], windows=both)) == [
        "e", "m"]
