"""The lake's id index as runs of sorted keys: ids of any form claimed once, keys that share their first word
told apart, and a partition's runs kept few and bounded however many writes it takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from citysoc.store import ParquetEventStore, claims
from citysoc.store.parquet import _sorted_distinct
from tests.store.lake_helpers import DATASET, events, stored_ids


def with_ids(table: pa.Table, ids: list[str]) -> pa.Table:
    event = table.column("event").combine_chunks()
    children = [pa.array(ids, pa.string()) if field.name == "id" else event.field(field.name) for field in event.type]
    event = pa.StructArray.from_arrays(children, fields=list(event.type))
    return table.set_column(table.schema.get_field_index("event"), "event", event)


def same_second(table: pa.Table) -> pa.Table:
    stamps = pa.array([table.column("@timestamp")[0].as_py()] * table.num_rows, table.schema.field("@timestamp").type)
    return table.set_column(0, "@timestamp", stamps)


def partition_runs(store: ParquetEventStore) -> list[claims.Run]:
    return [claims.read_run(path) for path in claims.all_runs(store.events_dir)]


def test_hex_ids_and_other_ids_are_claimed_once_each(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    hex_id = "0123456789abcdef0123456789abcdef"
    ids = [hex_id, hex_id.upper(), "e1", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "ü" * 32, hex_id[:31] + "g"]
    table = same_second(with_ids(events(len(ids)), ids))
    assert store.write_table(tenant="council", dataset=DATASET, table=table).stored == len(ids)
    result = store.write_table(tenant="council", dataset=DATASET, table=pa.concat_tables([table, table]))
    assert (result.stored, result.duplicates) == (0, 2 * len(ids))
    assert sorted(stored_ids(store.events_dir)) == sorted(ids)
    assert store.stored() == store.stored(tenant="council", dataset=DATASET) == len(ids)
    assert store.stored(tenant="other") == 0


def test_keys_that_share_their_primary_word_are_told_apart_by_the_secondary(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    # the same second and the same first 47 bits of the id (the primary), different rest
    ids = [f"0000000000000000{digit}000000000000000" for digit in "123"]
    table = same_second(with_ids(events(3), ids))
    keys = claims.keys_of(table.column("event").combine_chunks().field("id"), table.column("@timestamp"))
    assert len(set(keys.primary.tolist())) == 1 and len(set(keys.secondary.tolist())) == 3
    first = store.write_table(tenant="council", dataset=DATASET, table=pa.concat_tables([table.slice(0, 2),
                                                                                         table.slice(0, 1)]))
    assert (first.stored, first.duplicates) == (2, 1)  # a repeat within the table is found among equal primaries
    second = store.write_table(tenant="council", dataset=DATASET, table=table.take([2, 1, 0, 2]))
    assert (second.stored, second.duplicates) == (1, 3)  # each found in the run holding equal primaries
    assert sorted(stored_ids(store.events_dir)) == sorted(ids)


def test_a_partition_keeps_few_runs_of_bounded_size_over_many_writes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "MAX_RUN_KEYS", 1000)
    store = ParquetEventStore(tmp_path / "events")
    for number in range(60):
        store.write_table(tenant="council", dataset=DATASET, table=events(50, start=number * 50))
    runs = partition_runs(store)
    assert sum(len(run) for run in runs) == store.stored() == 3000
    assert max(len(run) for run in runs) <= 1000
    assert len(runs) <= 3 + 2 * 6  # full runs, plus about two per doubling below the bound
    for run in runs:
        assert pc.all(pc.less_equal(pa.array(run.primary[:-1]), pa.array(run.primary[1:]))).as_py()
    replay = store.write_table(tenant="council", dataset=DATASET,
                               table=pa.concat_tables([events(50, start=number * 50) for number in range(60)]))
    assert (replay.stored, replay.duplicates) == (0, 3000)
    assert len(stored_ids(store.events_dir)) == 3000


def test_each_day_of_a_write_has_its_own_runs(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write_table(tenant="council", dataset=DATASET, table=events(300, days=3))
    days = sorted(path.parent.name for path in claims.all_runs(store.events_dir))
    assert days == ["day=2026-03-02", "day=2026-03-03", "day=2026-03-04"]
    result = store.write_table(tenant="council", dataset=DATASET, table=events(400, days=4))
    assert result.stored + result.duplicates == 400
    assert len(stored_ids(store.events_dir)) == store.stored() == 300 + result.stored


def test_a_file_that_is_not_a_run_is_refused_with_its_path(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path / "events")
    store.write_table(tenant="council", dataset=DATASET, table=events(10))
    [run] = list(claims.all_runs(store.events_dir))
    run.write_bytes(run.read_bytes()[:-8])
    with pytest.raises(ValueError, match="not a claim run"):
        store.write_table(tenant="council", dataset=DATASET, table=events(10))


def test_hex_ids_have_the_same_value_whether_decoded_in_bulk_or_one_by_one() -> None:
    hex_ids = [f"{number:032x}" for number in (1, 2**64 + 5, 2**127 + 3)]
    in_bulk = claims.id_values(pa.array(hex_ids))  # all hex: one decode of the whole buffer
    one_by_one = claims.id_values(pa.array([*hex_ids, "e1"]))  # one other id: each row on its own
    assert in_bulk[0].tolist() == one_by_one[0][:3].tolist() == [0, 1, 2**63]
    assert in_bulk[1].tolist() == one_by_one[1][:3].tolist() == [1, 5, 3]
    large = claims.id_values(pa.array([*hex_ids, "e1"], pa.large_string()))  # as a file may hold them
    assert large[0].tolist() == one_by_one[0].tolist() and large[1].tolist() == one_by_one[1].tolist()
    spaced = "0a" + " " * 2 + "0b" * 14  # 32 characters that fromhex would read as 15 bytes
    for other in (spaced, hex_ids[0].upper().replace("0", "A")):
        values = claims.id_values(pa.array([hex_ids[0], other]))
        assert (values[0][0], values[1][0]) == (0, 1)
        assert (values[0][1], values[1][1]) != (0, 1)


def test_a_table_of_many_repeats_keeps_each_keys_first_row() -> None:
    """Rows whose keys repeat (the same id, or ids sharing the primary word) in any order: each distinct key's
    first row, in key order, as a reference that walks the rows finds them."""
    rng = np.random.default_rng(7)
    # 40 ids sharing the primary word (they differ in the secondary's top bits), 40 that differ in the primary
    distinct = [f"{0:016x}{index:04x}{0:012x}" for index in range(40)]
    distinct += [f"{index + 1:08x}{0:024x}" for index in range(40)]
    ids = [distinct[index] for index in rng.integers(0, len(distinct), 30_000).tolist()]
    table = same_second(with_ids(events(len(ids)), ids))
    keys = claims.keys_of(table.column("event").combine_chunks().field("id"), table.column("@timestamp"))
    order, primary, secondary = _sorted_distinct(keys, None)
    expected: dict[tuple[int, int], int] = {}
    for row, key in enumerate(zip(keys.primary.tolist(), keys.secondary.tolist(), strict=True)):
        expected.setdefault(key, row)
    assert sorted(order.tolist()) == sorted(expected.values())
    assert [expected[key] for key in zip(primary.tolist(), secondary.tolist(), strict=True)] == order.tolist()
    assert (np.diff(primary.astype(np.float64)) >= 0).all() and len(order) == len(distinct)
    rows = np.arange(0, len(ids), 3)
    order, _, _ = _sorted_distinct(keys, rows)
    assert sorted(order.tolist()) == sorted({key: row for row, key in reversed(list(zip(
        rows.tolist(), zip(keys.primary[rows].tolist(), keys.secondary[rows].tolist(), strict=True), strict=True)))}
        .values())
