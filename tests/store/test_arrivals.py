"""The lake's arrival order: each committed write gets the next number, whatever its events' times; readers ask
for what came after a mark; compaction neither hides unread events nor makes read ones new."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from citysoc.schema import ARROW_SCHEMA
from citysoc.store import Arrival, ParquetEventStore
from citysoc.store.compaction import _CURRENT_LEAVES
from citysoc.store.parquet import _fields_with_values
from tests.store.lake_helpers import DATASET, data_files, events, stored_ids

US = 1_000_000


def shifted(table: pa.Table, delta: timedelta) -> pa.Table:
    """`table` with every `@timestamp` moved by `delta` (an older or newer copy of the same events)."""
    stamps = pa.array([value + delta for value in table.column("@timestamp").to_pylist()],
                      ARROW_SCHEMA.field("@timestamp").type)
    return table.set_column(0, "@timestamp", stamps)


def test_each_write_is_one_arrival_in_commit_order_whatever_its_event_time(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    assert store.arrival_watermark() == 0
    live = events(10, prefix="live")
    store.write_table(tenant="council", dataset=DATASET, table=live)
    first = store.arrival_watermark()
    # a batch an hour older in event time arrives after it: it comes later in arrival order
    late = shifted(events(5, prefix="late"), -timedelta(hours=1))
    store.write_table(tenant="hospital", dataset=DATASET, table=late)
    assert store.write_table(tenant="hospital", dataset=DATASET, table=late).stored == 0  # a replay: no arrival
    second = store.arrival_watermark()
    assert (first, second) == (1, 2)

    stamps = [int(v.timestamp() * US) for v in late.column("@timestamp").to_pylist()]
    assert store.arrivals(after=first, upto=second) == [Arrival(DATASET, "hospital", min(stamps), max(stamps), 5)]
    assert [(a.tenant, a.events) for a in store.arrivals(after=0, upto=second)] == [("council", 10), ("hospital", 5)]
    assert store.arrivals(after=0, upto=first, datasets=["aws.cloudtrail"]) == []
    assert [path.name for path in store.arrived_files(DATASET, after=first, upto=second)] == [
        path.name for path in data_files(store.events_dir) if "tenant=hospital" in str(path)]
    store.write_table(tenant="hospital", dataset=DATASET, table=events(3, prefix="more"))
    assert [(a.tenant, a.events) for a in store.arrivals(after=0, upto=3)] == [
        ("council", 10), ("hospital", 5), ("hospital", 3)]  # one per write: each keeps its own time range


def test_a_lake_written_before_the_log_has_its_files_as_the_first_arrival(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write_table(tenant="council", dataset=DATASET, table=events(20, days=2))
    index = sqlite3.connect(store.events_dir / "_ids.sqlite")
    for table in ("arrival_seq", "lake_file", "consumer_cursor"):
        index.execute(f"DROP TABLE {table}")
    index.commit()
    index.close()

    reopened = ParquetEventStore(store.events_dir)
    assert reopened.arrival_watermark() == 1
    (arrival,) = reopened.arrivals(after=0, upto=1)
    assert (arrival.tenant, arrival.events) == ("council", 20)


def test_compaction_keeps_unread_files_and_merges_read_ones_at_their_newest_number(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    for number in range(6):
        store.write_table(tenant="council", dataset=DATASET, table=events(4, prefix=f"b{number}-"))
    store.set_consumer_cursor("detector", 4)  # has read writes 1..4, not 5 and 6
    assert store.compact(min_files=2) == 4
    files = data_files(store.events_dir)
    assert len(files) == 3  # one merged file, the two unread ones untouched
    assert sorted(stored_ids(store.events_dir)) == sorted(f"b{n}-{i}" for n in range(6) for i in range(4))
    # what the detector has not read is still new to it, and nothing it read is new again
    assert [a.events for a in store.arrivals(after=4, upto=store.arrival_watermark())] == [4, 4]
    assert store.arrivals(after=4, upto=4) == []
    assert [a.events for a in store.arrivals(after=3, upto=4)] == [16]  # the merge is numbered 4, its newest input
    assert [a.events for a in store.arrivals(after=0, upto=6)] == [16, 4, 4]  # one per write

    store.set_consumer_cursor("detector", 6)
    assert store.compact(min_files=2) == 3
    assert [pq.read_metadata(path).num_rows for path in data_files(store.events_dir)] == [24]
    assert [a.events for a in store.arrivals(after=5, upto=6)] == [24]  # never moved to an older number
    assert store.arrival_watermark() == 6


def with_values(table: pa.Table, rows: dict[int, dict[str, object]]) -> pa.Table:
    """`table` with some rows' fields replaced (nested documents, as `to_row` takes them)."""
    docs = table.to_pylist()
    for row, fields in rows.items():
        for name, value in fields.items():
            docs[row][name] = value
    return pa.Table.from_pylist(docs, schema=ARROW_SCHEMA)


def recorded_filled(store: ParquetEventStore) -> dict[str, frozenset[str] | None]:
    index = sqlite3.connect(store.events_dir / "_ids.sqlite")
    try:
        return {path: None if filled is None else frozenset(json.loads(filled))
                for path, filled in index.execute("SELECT path, filled FROM lake_file")}
    finally:
        index.close()


def test_a_write_records_the_fields_its_file_fills_as_the_footer_tells_them(tmp_path: Path) -> None:
    """A leaf counts as filled when some row holds it; a leaf under a null struct is null, an empty string a value."""
    store = ParquetEventStore(tmp_path / "events")
    table = with_values(events(6), {
        1: {"user": {"name": "root", "email": None}, "source": {"ip": "192.0.2.7", "as": {"number": 64500}}},
        2: {"user_agent": {"original": ""}, "source": None},
        3: {"destination": {"domain": None}},
    })
    store.write_table(tenant="council", dataset=DATASET, table=table)
    [(path, filled)] = recorded_filled(store).items()
    assert filled is not None
    assert {"user.name", "source.ip", "source.as.number", "user_agent.original", "message"} <= filled
    assert not filled & {"user.email", "destination.domain", "source.domain", "file.hash.sha256"}
    file = store.events_dir / path
    leaves = tuple(sorted(name for name, kind in _CURRENT_LEAVES.items() if not pa.types.is_list(kind)))
    footer = _fields_with_values(str(file), file.stat().st_size, file.stat().st_mtime_ns, leaves)
    assert filled & set(leaves) == footer


def test_a_merge_records_the_union_and_a_log_before_the_record_gains_it_unknown(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write_table(tenant="council", dataset=DATASET,
                      table=with_values(events(3, prefix="a"), {0: {"user": {"name": "root"}}}))
    store.write_table(tenant="council", dataset=DATASET,
                      table=with_values(events(3, prefix="b"), {1: {"source": {"domain": "scanner.example.net"}}}))
    firsts = list(recorded_filled(store).values())
    store.set_consumer_cursor("detector", 2)
    assert store.compact(min_files=2) == 2
    [merged] = recorded_filled(store).values()
    assert merged == frozenset().union(*(filled or () for filled in firsts))
    assert {"user.name", "source.domain"} <= merged

    index = sqlite3.connect(store.events_dir / "_ids.sqlite")  # the log as it was before the record
    index.execute("ALTER TABLE lake_file DROP COLUMN filled")
    index.commit()
    index.close()
    reopened = ParquetEventStore(store.events_dir)
    reopened.write_table(tenant="council", dataset=DATASET, table=events(3, prefix="c"))
    assert sorted(filled is None for filled in recorded_filled(reopened).values()) == [False, True]
    reopened.set_consumer_cursor("detector", reopened.arrival_watermark())
    assert reopened.compact(min_files=2) == 2
    assert list(recorded_filled(reopened).values()) == [None]  # one input unknown: the merge's too
