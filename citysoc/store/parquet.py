"""The embedded default: a Parquet lake partitioned by dataset, tenant and day.

Layout: `<lake>/events/dataset=<dataset>/tenant=<tenant>/day=<YYYY-MM-DD>/part-<id>.parquet`, every
file written with the one schema of `citysoc.schema`, so Spark reads any subset natively. Dataset comes
first because the correlator makes one pass per log source.

Replays are no-ops: an id index (SQLite, next to the files) records every stored `event.id` per
tenant and dataset. New ids are claimed and the files written inside one index transaction, so a
failed write claims nothing; a crash between the file write and the commit can at worst store an
event twice (at-least-once), which the correlator's per-id de-duplication absorbs.
"""

from __future__ import annotations

import fcntl
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from citysoc.schema import ARROW_SCHEMA, PARQUET_OPTIONS, event_time, to_row
from citysoc.store.base import EventStore, WriteResult, register_store
from citysoc.tenancy import validate_tenant_id

_INDEX_DDL = """
CREATE TABLE IF NOT EXISTS stored_event (
    tenant TEXT NOT NULL, dataset TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (tenant, dataset, id)
) WITHOUT ROWID
"""


def partition_dir(events_dir: Path, *, dataset: str, tenant: str, day: str) -> Path:
    return events_dir / f"dataset={dataset}" / f"tenant={tenant}" / f"day={day}"


@register_store
class ParquetEventStore(EventStore):
    """Parquet files under `events_dir`; readable by Spark, pyarrow and DuckDB alike."""

    name = "parquet"

    def __init__(self, events_dir: Path) -> None:
        self.events_dir = events_dir

    @contextmanager
    def _locked_index(self) -> Iterator[sqlite3.Connection]:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        with open(self.events_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time per lake
            conn = sqlite3.connect(self.events_dir / "_ids.sqlite")
            try:
                conn.execute(_INDEX_DDL)
                yield conn
            finally:
                conn.close()

    def write(self, *, tenant: str, dataset: str, events: Iterable[Mapping[str, Any]]) -> WriteResult:
        validate_tenant_id(tenant)
        rows_by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        duplicates = 0
        with self._locked_index() as conn:
            try:
                for event in events:
                    row = to_row(event)
                    claimed = conn.execute(
                        "INSERT OR IGNORE INTO stored_event (tenant, dataset, id) VALUES (?, ?, ?)",
                        (tenant, dataset, row["event"]["id"]),
                    ).rowcount
                    if not claimed:
                        duplicates += 1
                        continue
                    rows_by_day[event_time(row).strftime("%Y-%m-%d")].append(row)
                for day, rows in rows_by_day.items():
                    self._write_file(tenant=tenant, dataset=dataset, day=day, rows=rows)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        return WriteResult(stored=sum(len(rows) for rows in rows_by_day.values()), duplicates=duplicates)

    def _write_file(self, *, tenant: str, dataset: str, day: str, rows: list[dict[str, Any]]) -> None:
        directory = partition_dir(self.events_dir, dataset=dataset, tenant=tenant, day=day)
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)
        final = directory / f"part-{uuid.uuid4().hex}.parquet"
        partial = final.with_suffix(".parquet.tmp")  # readers never see a half-written file
        pq.write_table(table, partial, **PARQUET_OPTIONS)
        partial.rename(final)

    def count(self, *, tenant: str | None = None, dataset: str | None = None) -> int:
        """Stored events, optionally for one tenant and/or dataset (from the id index)."""
        if not (self.events_dir / "_ids.sqlite").exists():
            return 0
        query, params = "SELECT count(*) FROM stored_event WHERE 1=1", list[str]()
        if tenant:
            query, params = query + " AND tenant = ?", [*params, tenant]
        if dataset:
            query, params = query + " AND dataset = ?", [*params, dataset]
        with self._locked_index() as conn:
            return int(conn.execute(query, params).fetchone()[0])

    def dataset_paths(self, dataset: str) -> list[Path]:
        """Partition folders of one dataset that hold data (what Spark should read)."""
        root = self.events_dir / f"dataset={dataset}"
        return [root] if root.exists() and any(root.rglob("*.parquet")) else []
