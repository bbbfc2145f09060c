"""The Parquet store's write path and compaction: replays are no-ops, partitions are UTC days, nothing half-made
is ever listed, and compaction merges small files without losing or repeating an event."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore, WriteResult, claims
from citysoc.store.journal import STAGING
from citysoc.store.parquet import ROW_GROUP_ROWS
from tests.store.lake_helpers import DATASET, data_files, events, stored_ids


def lake(tmp_path: Path) -> ParquetEventStore:
    return ParquetEventStore(tmp_path / "events")


def day_folders(store: ParquetEventStore) -> list[str]:
    return sorted(path.parent.name for path in data_files(store.events_dir))


def test_write_table_stores_new_ids_once_and_leaves_nothing_staged(tmp_path: Path) -> None:
    store = lake(tmp_path)
    first = events(300, days=3)
    repeated = pa.concat_tables([first.slice(0, 10), events(50, prefix="n")])  # 10 known, 50 new
    assert store.write_table(tenant="council", dataset=DATASET, table=first) == WriteResult(300, 0)
    result = store.write_table(tenant="council", dataset=DATASET, table=pa.concat_tables([repeated, repeated]))
    assert (result.stored, result.duplicates) == (50, 70)  # repeats within the table count as duplicates
    assert store.write_table(tenant="other-tenant", dataset=DATASET, table=first.slice(0, 5)).stored == 5
    ids = stored_ids(store.events_dir)
    assert len(ids) == len(set(ids)) + 5 == 355  # the other tenant's five share ids, not rows
    assert store.count(DATASET) == store.stored() == 355
    assert list((store.events_dir / STAGING).iterdir()) == []
    assert all(path.name.startswith("part-") for folder in store.partitions(DATASET) for path in folder.iterdir())


def test_days_are_utc_whatever_the_zone_of_the_timestamp(tmp_path: Path) -> None:
    store = lake(tmp_path)
    late_evening = datetime(2026, 3, 2, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 04:30 UTC on the 3rd
    store.write(tenant="council", dataset=DATASET, events=[{"@timestamp": late_evening, "event": {"id": "a"}}])
    assert day_folders(store) == ["day=2026-03-03"]
    assert store.count(DATASET, since=datetime(2026, 3, 3, tzinfo=UTC)) == 1


def test_write_of_documents_keeps_its_checks_and_touches_nothing_when_empty(tmp_path: Path) -> None:
    store = lake(tmp_path)
    assert store.write(tenant="council", dataset=DATASET, events=[]) == WriteResult(0, 0)
    assert not store.events_dir.exists()
    with pytest.raises(TypeError, match="@timestamp must be a timezone-aware datetime"):
        store.write(tenant="council", dataset=DATASET, events=[{"@timestamp": "2026-03-02", "event": {"id": "a"}}])
    with pytest.raises(KeyError, match=r"not in the event schema: vendor\.field"):
        store.write(tenant="council", dataset=DATASET, events=[{"vendor": {"field": 1}}])
    docs = [{"@timestamp": datetime(2026, 3, 2, tzinfo=UTC), "event": {"id": name}} for name in "abca"]
    assert store.write(tenant="council", dataset=DATASET, events=docs) == WriteResult(3, 1)


def test_rows_without_id_or_time_are_refused_whole(tmp_path: Path) -> None:
    store = lake(tmp_path)
    table = events(5)
    no_id = table.set_column(table.schema.get_field_index("event"), "event", pa.array(
        [None, *table.column("event").to_pylist()[1:]], ARROW_SCHEMA.field("event").type))
    with pytest.raises(ValueError, match=r"every event needs an event\.id"):
        store.write_table(tenant="council", dataset=DATASET, table=no_id)
    no_time = table.set_column(0, "@timestamp", pa.array([None] * 5, ARROW_SCHEMA.field("@timestamp").type))
    with pytest.raises(ValueError, match="every event needs an @timestamp"):
        store.write_table(tenant="council", dataset=DATASET, table=no_time)
    assert store.stored() == 0 and data_files(store.events_dir) == []


def test_compaction_merges_small_files_into_full_row_groups(tmp_path: Path) -> None:
    store = lake(tmp_path)
    rows = ROW_GROUP_ROWS * 3 // 4  # three inputs make two full row groups and a rest
    for number in range(3):
        store.write_table(tenant="council", dataset=DATASET, table=events(rows, start=number * rows))
    for number in range(2):  # another tenant: too few files to compact
        store.write_table(tenant="north-school", dataset=DATASET, table=events(10, start=number * 10))
    ids_before = sorted(stored_ids(store.events_dir))
    assert store.compact(min_files=3) == 3
    assert sorted(stored_ids(store.events_dir)) == ids_before
    council = [path for path in data_files(store.events_dir) if "tenant=council" in str(path)]
    (merged,) = council
    metadata = pq.read_metadata(merged)
    assert [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)] == [
        ROW_GROUP_ROWS, ROW_GROUP_ROWS, 3 * rows - 2 * ROW_GROUP_ROWS]
    assert 3 * rows - 2 * ROW_GROUP_ROWS > 0
    assert pq.read_schema(merged).equals(ARROW_SCHEMA, check_metadata=False)
    assert len(data_files(store.events_dir)) == 3  # north-school's two files untouched
    assert store.count(DATASET) == len(ids_before) == store.stored()
    assert store.compact(min_files=2) == 2 and store.compact(min_files=2) == 0  # merged files are not redone


def test_compaction_leaves_foreign_and_hidden_files_and_other_datasets_alone(tmp_path: Path) -> None:
    store = lake(tmp_path)
    for number in range(4):
        store.write_table(tenant="council", dataset=DATASET, table=events(20, start=number * 20))
        store.write_table(tenant="council", dataset="aws.cloudtrail", table=events(20, start=number * 20))
    folder = store.partitions(DATASET)[0]
    (folder / "part-copied-by-hand.parquet").write_bytes(b"not parquet")
    pq.write_table(pa.table({"other": [1]}), folder / "part-other-schema.parquet")
    (folder / ".hidden.parquet").write_bytes(b"")
    assert store.compact(DATASET, min_files=4) == 4
    assert sorted(path.name for path in folder.iterdir() if not path.name.startswith("part-")) == [".hidden.parquet"]
    assert {"part-copied-by-hand.parquet", "part-other-schema.parquet"} <= {path.name for path in folder.iterdir()}
    assert len(list(store.partitions("aws.cloudtrail")[0].glob("*.parquet"))) == 4
    with pytest.raises(ValueError, match="min_files must be at least 2"):
        store.compact(min_files=1)


def test_compaction_beside_a_writer_loses_and_repeats_nothing(tmp_path: Path) -> None:
    store = lake(tmp_path)
    done = threading.Event()
    merged: list[int] = []

    def compact_repeatedly() -> None:
        while not done.is_set():
            merged.append(ParquetEventStore(store.events_dir).compact(min_files=2))

    compactor = threading.Thread(target=compact_repeatedly)
    compactor.start()
    try:
        for number in range(60):
            store.write_table(tenant="council", dataset=DATASET, table=events(50, start=number * 50))
    finally:
        done.set()
        compactor.join()
    ids = stored_ids(store.events_dir)
    assert sum(merged) > 0
    assert len(ids) == len(set(ids)) == 3000 == store.count(DATASET)
    assert pc.all(pc.is_in(pa.array(ids), pa.array([f"e{n}" for n in range(3000)]))).as_py()


LEGACY_INDEXES = {  # the index as the store kept it before, in SQLite: one row per claimed id
    "by second": ("CREATE TABLE claim_scope (scope INTEGER PRIMARY KEY, tenant TEXT NOT NULL, dataset TEXT NOT NULL, "
                  "UNIQUE (tenant, dataset))",
                  "CREATE TABLE event_claim (scope INTEGER NOT NULL, second INTEGER NOT NULL, id TEXT NOT NULL, "
                  "PRIMARY KEY (scope, second, id)) WITHOUT ROWID",
                  "INSERT INTO claim_scope VALUES (1, 'council', ?)",
                  "INSERT INTO event_claim VALUES (1, 0, ?)"),
    "by id": ("CREATE TABLE stored_event (tenant TEXT NOT NULL, dataset TEXT NOT NULL, id TEXT NOT NULL, "
              "PRIMARY KEY (tenant, dataset, id)) WITHOUT ROWID",
              "INSERT INTO stored_event VALUES ('council', ?, ?)"),
}


@pytest.mark.parametrize("layout", sorted(LEGACY_INDEXES))
def test_an_index_of_a_previous_layout_is_rebuilt_from_the_files(tmp_path: Path, layout: str) -> None:
    store = lake(tmp_path)
    store.write_table(tenant="council", dataset=DATASET, table=events(40))
    shutil.rmtree(store.events_dir / claims.CLAIMS)
    conn = sqlite3.connect(store.events_dir / "_ids.sqlite")
    with conn:  # the old index claims e0-e40, and e40 has no file
        statements = LEGACY_INDEXES[layout]
        if layout == "by id":
            conn.execute(statements[0])
            conn.executemany(statements[1], [(DATASET, f"e{number}") for number in range(41)])
        else:
            conn.execute(statements[0])
            conn.execute(statements[1])
            conn.execute(statements[2], (DATASET,))
            conn.executemany(statements[3], [(f"e{number}",) for number in range(41)])
    conn.close()
    reopened = ParquetEventStore(store.events_dir)
    assert reopened.stored() == 40  # e40 was claimed, but its file is not in the lake
    conn = sqlite3.connect(store.events_dir / "_ids.sqlite")
    assert not {name for name, in conn.execute("SELECT name FROM sqlite_master")} & set(claims.LEGACY_TABLES)
    conn.close()
    result = reopened.write_table(tenant="council", dataset=DATASET,
                                  table=pa.concat_tables([events(40), events(1, start=40)]))
    assert (result.stored, result.duplicates) == (1, 40)
    assert sorted(stored_ids(store.events_dir)) == sorted(f"e{number}" for number in range(41))


def test_files_encode_unique_values_plain_and_compress_only_filled_leaves(tmp_path: Path) -> None:
    store = lake(tmp_path)
    table = events(300).to_pylist()
    for number, row in enumerate(table):
        row["event"]["original"] = f"line {number}"
        row["process"] = {"pid": 1000 + number, "name": "sshd", "hash": {"md5": None}}
    written = pa.Table.from_pylist(table, schema=ARROW_SCHEMA)
    store.write_table(tenant="council", dataset=DATASET, table=written)
    (path,) = data_files(store.events_dir)
    metadata = pq.read_metadata(path)
    chunks = {metadata.schema.column(i).path: metadata.row_group(0).column(i) for i in range(metadata.num_columns)}
    for plain in ("event.original", "process.pid", "@timestamp", "event.id"):
        assert not any("DICTIONARY" in encoding for encoding in chunks[plain].encodings), plain
    assert any("DICTIONARY" in encoding for encoding in chunks["process.name"].encodings)
    assert chunks["process.pid"].compression == chunks["event.original"].compression == "ZSTD"
    assert chunks["process.hash.md5"].compression == "UNCOMPRESSED"  # a null leaf kept to hold its struct
    assert pq.read_table(path, schema=ARROW_SCHEMA).equals(written)
