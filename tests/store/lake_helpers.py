"""Builders and checks for the Parquet store's tests: tables of events, and reading a lake as any reader would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from citysoc.schema import ARROW_SCHEMA, to_row

T0 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
DATASET = "system.auth"


def events(count: int, *, prefix: str = "e", days: int = 1, start: int = 0) -> pa.Table:
    """`count` events with ids `<prefix><start>`..., spread evenly over `days` UTC days from T0's day (built
    column-wise: a test may need a few hundred thousand)."""
    template = pa.Table.from_pylist([to_row({
        "message": "Failed password for root from 192.0.2.7 port 22 ssh2",
        "event": {"id": "template", "dataset": DATASET},
        "organization": {"id": "council"},
    })], schema=ARROW_SCHEMA).take(pa.array([0] * count, pa.int64()))
    step = timedelta(days=days) // timedelta(microseconds=1) // count
    day_start = int(T0.replace(hour=0).timestamp()) * 1_000_000
    stamps = pa.array(range(day_start, day_start + step * count, step), pa.int64())[:count].cast(
        ARROW_SCHEMA.field("@timestamp").type)
    event = template.column("event").combine_chunks()
    ids = pa.array([f"{prefix}{number}" for number in range(start, start + count)], pa.string())
    children = [ids if field.name == "id" else event.field(field.name) for field in event.type]
    event = pa.StructArray.from_arrays(children, fields=list(event.type))
    table = template.set_column(0, "@timestamp", stamps)
    return table.set_column(table.schema.get_field_index("event"), "event", event)


def data_files(events_dir: Path) -> list[Path]:
    """The files a reader lists: `*.parquet` under the partition folders, hidden names (`.x`, `_x`) left out,
    as Spark's file index leaves them out."""
    return sorted(path for path in events_dir.rglob("*.parquet")
                  if not any(part.startswith((".", "_")) for part in path.relative_to(events_dir).parts))


def stored_ids(events_dir: Path) -> list[str]:
    """Every event id of the lake, read file by file with pyarrow (fails if any listed file is unreadable)."""
    ids: list[str] = []
    for path in data_files(events_dir):
        ids.extend(pq.read_table(path, columns=["event"]).column("event").combine_chunks().field("id").to_pylist())
    return ids
