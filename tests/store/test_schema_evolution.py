"""A lake written before fields were added to the event schema (here the GeoIP `source.geo`/`source.as`) stays
readable: Spark reads the old files' missing fields as null beside new files, and compaction merges both."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from citysoc.schema import ARROW_SCHEMA, PARQUET_OPTIONS
from citysoc.store import ParquetEventStore
from citysoc.store.compaction import readable_as_current
from citysoc.store.parquet import partition_dir
from tests.store.lake_helpers import DATASET, T0, data_files, events, stored_ids


def without_geo(schema: pa.Schema) -> pa.Schema:
    """The event schema as it was before GeoIP enrichment."""
    source = schema.field("source")
    kept = [item for item in source.type if item.name not in ("geo", "as")]
    return schema.set(schema.get_field_index("source"), pa.field("source", pa.struct(kept)))


OLD_SCHEMA = without_geo(ARROW_SCHEMA)


def with_country(table: pa.Table, code: str) -> pa.Table:
    rows = table.column("source").to_pylist()
    for row in rows:
        row["ip"], row["geo"]["country_iso_code"] = "81.2.69.142", code
    return table.set_column(table.schema.get_field_index("source"), "source",
                            pa.array(rows, ARROW_SCHEMA.field("source").type))


def write_old_file(store: ParquetEventStore, table: pa.Table) -> Path:
    """A file as the store wrote it before the fields existed."""
    old = pa.Table.from_pylist(table.to_pylist(), schema=OLD_SCHEMA)
    folder = partition_dir(store.events_dir, dataset=DATASET, tenant="council", day=T0.date().isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    options = {**PARQUET_OPTIONS, "use_dictionary": False}
    pq.write_table(old, path, **options)
    return path


def test_an_older_schema_is_recognised_and_a_foreign_one_is_not() -> None:
    assert readable_as_current(ARROW_SCHEMA) and readable_as_current(OLD_SCHEMA)
    assert not readable_as_current(pa.schema([("id", pa.string())]))
    changed = ARROW_SCHEMA.set(ARROW_SCHEMA.get_field_index("message"), pa.field("message", pa.int64()))
    assert not readable_as_current(changed)


def test_spark_reads_old_and_new_files_together(spark: SparkSession, tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    write_old_file(store, events(3, prefix="old"))
    store.write_table(tenant="council", dataset=DATASET, table=with_country(events(2, prefix="new"), "GB"))
    frame = store.read(spark, DATASET)
    assert frame is not None
    rows = {row["id"]: row["country"] for row in frame.selectExpr(
        "event.id AS id", "source.geo.country_iso_code AS country").collect()}
    assert rows == {"old0": None, "old1": None, "old2": None, "new0": "GB", "new1": "GB"}
    assert frame.where("source.as.number IS NULL").count() == 5


def test_compaction_merges_old_files_with_new_ones(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    for number in range(3):
        write_old_file(store, events(2, prefix=f"old{number}-"))
    store.write_table(tenant="council", dataset=DATASET, table=with_country(events(2, prefix="new"), "BR"))
    assert store.compact(min_files=2) == 4
    (merged,) = data_files(store.events_dir)
    table = pq.read_table(merged)
    assert table.schema.equals(ARROW_SCHEMA, check_metadata=False)
    assert sorted(stored_ids(store.events_dir)) == sorted(
        [f"old{n}-{i}" for n in range(3) for i in range(2)] + ["new0", "new1"])
    countries = [(row["geo"] or {}).get("country_iso_code") for row in table.column("source").to_pylist()]
    assert sorted(countries, key=str) == ["BR", "BR", *[None] * 6]


def _leaf_count(schema: pa.Schema) -> int:
    return len(pa.Table.from_pylist([], schema=schema).flatten().flatten().flatten().flatten().schema)


def _by_id(table: pa.Table) -> pa.Table:
    table = table.select(ARROW_SCHEMA.names)
    return table.take(pc.sort_indices(pa.table({"id": pc.struct_field(table.column("event"), "id")}),
                                      [("id", "ascending")]))


def test_the_store_writes_only_filled_leaves_and_every_reader_gets_the_table_back(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    plain, located = events(3, prefix="plain"), with_country(events(2, prefix="geo"), "GB")
    store.write_table(tenant="council", dataset=DATASET, table=plain)
    store.write_table(tenant="council", dataset=DATASET, table=located)
    written = pa.concat_tables([plain, located])
    for path in data_files(store.events_dir):
        schema = pq.read_schema(path)
        assert schema.names == ARROW_SCHEMA.names  # every column, every struct (with one leaf at least)
        assert readable_as_current(schema) and _leaf_count(schema) < _leaf_count(ARROW_SCHEMA) // 3
    lake = store.arrow_dataset(DATASET)
    assert lake is not None and _by_id(lake.to_table()).equals(_by_id(written))
    assert store.compact(min_files=2) == 2
    (merged,) = data_files(store.events_dir)
    assert _by_id(pq.read_table(merged)).equals(_by_id(written))


def test_spark_reads_files_of_different_leaves_as_written(spark: SparkSession, tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write_table(tenant="council", dataset=DATASET, table=events(3, prefix="plain"))
    store.write_table(tenant="council", dataset=DATASET, table=with_country(events(2, prefix="geo"), "GB"))
    frame = store.read(spark, DATASET)
    assert frame is not None
    # country_name and user.name are in neither file: a struct read for leaves its file does not hold
    rows = {row["id"]: (row["ip"], row["country"], row["name"], row["source_null"], row["geo_null"], row["user"])
            for row in frame.selectExpr("event.id AS id", "source.ip AS ip", "source.geo.country_iso_code AS country",
                                        "source.geo.country_name AS name", "source IS NULL AS source_null",
                                        "source.geo IS NULL AS geo_null", "user.name AS user").collect()}
    assert rows == {**{f"plain{n}": (None, None, None, False, False, None) for n in range(3)},
                    **{f"geo{n}": ("81.2.69.142", "GB", None, False, False, None) for n in range(2)}}
    assert frame.where("source.geo.country_name IS NULL AND user IS NOT NULL").count() == 5
