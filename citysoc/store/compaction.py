"""Which small files of a lake partition to merge, and the merge itself (streamed: memory stays about one row
group whatever the partition's size). Swapping the merged file in is the store's job (`citysoc.store.journal`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from citysoc.schema import ARROW_SCHEMA, PARQUET_OPTIONS
from citysoc.store.durable import fsync_file

TARGET_ROWS = 1024 * 1024  # a merged file holds up to this many rows (16 of the store's row groups)


def plan_merges(folder: Path, *, min_files: int, skip: Collection[Path] = ()) -> list[list[Path]]:
    """Groups of a partition's small files to merge, each of at most about `TARGET_ROWS` rows; none when the
    folder holds fewer than `min_files` small files. Hidden files (`.x`, `_x`, as Spark skips them), files in
    another schema, unreadable files and those in `skip` are left out; files of an older event schema (written
    before fields were added) are merged, their missing fields null."""
    small: list[tuple[Path, int]] = []
    for path in sorted(folder.glob("*.parquet")):
        if path.name.startswith((".", "_")) or path in skip:
            continue
        try:
            metadata = pq.read_metadata(path)
            ours = readable_as_current(metadata.schema.to_arrow_schema())
        except (OSError, pa.ArrowException):
            continue  # not ours to repair; a reader of this folder reports it
        if ours and metadata.num_rows < TARGET_ROWS:
            small.append((path, metadata.num_rows))
    if len(small) < min_files:
        return []
    groups: list[list[Path]] = [[]]
    rows = 0
    for path, count in small:
        if groups[-1] and rows + count > TARGET_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(path)
        rows += count
    return [group for group in groups if len(group) > 1]


def _leaves(fields: Any, prefix: str = "") -> dict[str, pa.DataType]:
    leaves: dict[str, pa.DataType] = {}
    for item in fields:
        if pa.types.is_struct(item.type):
            leaves.update(_leaves(item.type, f"{prefix}{item.name}."))
        else:
            leaves[f"{prefix}{item.name}"] = item.type
    return leaves


_CURRENT_LEAVES = _leaves(ARROW_SCHEMA)


def readable_as_current(schema: pa.Schema) -> bool:
    """True for the event schema and for older versions of it: every field of `schema` is in the current
    schema with the same type (fields added since are read as null)."""
    if schema.equals(ARROW_SCHEMA, check_metadata=False):
        return True
    return schema.names == [name for name in ARROW_SCHEMA.names if name in schema.names] and all(
        _CURRENT_LEAVES.get(name) == kind for name, kind in _leaves(schema).items())


def write_merged(files: Sequence[Path], target: Path, *, row_group_rows: int) -> int:
    """Write the rows of `files`, in order, to `target` in full row groups and fsync it; returns the rows."""
    written = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pq.ParquetWriter(target, ARROW_SCHEMA, **PARQUET_OPTIONS) as writer:
        for path in files:
            with pq.ParquetFile(path) as source:
                current = source.schema_arrow.equals(ARROW_SCHEMA, check_metadata=False)
                for batch in source.iter_batches(batch_size=row_group_rows):
                    pending.append(batch if current else batch.cast(ARROW_SCHEMA))
                    pending_rows += batch.num_rows
                    while pending_rows >= row_group_rows:
                        table = pa.Table.from_batches(pending, schema=ARROW_SCHEMA)
                        writer.write_table(table.slice(0, row_group_rows), row_group_size=row_group_rows)
                        rest = table.slice(row_group_rows)
                        pending, pending_rows = rest.to_batches(), rest.num_rows
                        written += row_group_rows
        if pending_rows:
            writer.write_table(pa.Table.from_batches(pending, schema=ARROW_SCHEMA), row_group_size=row_group_rows)
            written += pending_rows
    fsync_file(target)
    return written
