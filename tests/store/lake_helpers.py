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
    """`count` events with ids `<prefix><start>`..., spread evenly over `days` UTC days from T0's day."""
    step = timedelta(days=days) / count
    return pa.Table.from_pylist([to_row({
        "@timestamp": T0.replace(hour=0) + step * (number - start),
        "message": f"Failed password for root from 192.0.2.{number % 250} port 22 ssh2",
        "event": {"id": f"{prefix}{number}", "dataset": DATASET},
        "organization": {"id": "council"},
    }) for number in range(start, start + count)], schema=ARROW_SCHEMA)


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
