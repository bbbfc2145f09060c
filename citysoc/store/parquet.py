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
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from citysoc.schema import ARROW_SCHEMA, PARQUET_OPTIONS, event_time, spark_schema, to_row
from citysoc.store.base import EventStore, WriteResult, register_store
from citysoc.tenancy import validate_tenant_id

_INDEX_DDL = """
CREATE TABLE IF NOT EXISTS stored_event (
    tenant TEXT NOT NULL, dataset TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (tenant, dataset, id)
) WITHOUT ROWID
"""


ROW_GROUP_ROWS = 64 * 1024  # Spark splits a file's work by row group
PARTITIONS = ("dataset", "tenant", "day")  # the folders: events/dataset=<d>/tenant=<t>/day=<YYYY-MM-DD>


def partition_dir(events_dir: Path, *, dataset: str, tenant: str, day: str) -> Path:
    return events_dir / f"dataset={dataset}" / f"tenant={tenant}" / f"day={day}"


def day_range(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    """First and last UTC day (`YYYY-MM-DD`, the `day=` folders) that [since, until) touches."""
    for bound in (since, until):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    first = since.astimezone(UTC).date().isoformat() if since is not None else None
    last = (until.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat() if until is not None else None
    return first, last


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
                    self._write_file(tenant=tenant, dataset=dataset, day=day,
                                     table=pa.Table.from_pylist(rows, schema=ARROW_SCHEMA))
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        return WriteResult(stored=sum(len(rows) for rows in rows_by_day.values()), duplicates=duplicates)

    def write_table(self, *, tenant: str, dataset: str, table: pa.Table) -> WriteResult:
        """Store an Arrow table of events (`citysoc.schema.ARROW_SCHEMA`) of one tenant and dataset: the
        columnar path for bulk loads. Rows whose `event.id` is stored already, or repeats an earlier row
        of the table, are skipped."""
        validate_tenant_id(tenant)
        table = table.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
        ids = table.column("event").combine_chunks().field("id").to_pylist()
        if any(event_id is None for event_id in ids):
            raise ValueError("every event needs an event.id")
        first: dict[str, int] = {}
        for position, event_id in enumerate(ids):
            first.setdefault(event_id, position)
        with self._locked_index() as conn:
            try:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS batch (id TEXT PRIMARY KEY) WITHOUT ROWID")
                conn.execute("DELETE FROM temp.batch")
                conn.executemany("INSERT INTO temp.batch (id) VALUES (?)", ((event_id,) for event_id in first))
                known = {row[0] for row in conn.execute(
                    "SELECT id FROM stored_event WHERE tenant = ? AND dataset = ? "
                    "AND id IN (SELECT id FROM temp.batch)",
                    (tenant, dataset))}
                conn.execute("INSERT INTO stored_event (tenant, dataset, id) SELECT ?, ?, id FROM temp.batch "
                             "WHERE id NOT IN (SELECT id FROM stored_event WHERE tenant = ? AND dataset = ?)",
                             (tenant, dataset, tenant, dataset))
                keep = sorted(position for event_id, position in first.items() if event_id not in known)
                new = table.take(pa.array(keep, pa.int64()))
                days = pc.strftime(new.column("@timestamp"), format="%Y-%m-%d")
                for day in pc.unique(days).to_pylist():
                    self._write_file(tenant=tenant, dataset=dataset, day=day,
                                     table=new.filter(pc.equal(days, pa.scalar(day))))
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        return WriteResult(stored=len(keep), duplicates=len(ids) - len(keep))

    def _write_file(self, *, tenant: str, dataset: str, day: str, table: pa.Table) -> None:
        directory = partition_dir(self.events_dir, dataset=dataset, tenant=tenant, day=day)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"part-{uuid.uuid4().hex}.parquet"
        partial = final.with_suffix(".parquet.tmp")  # readers never see a half-written file
        pq.write_table(table, partial, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
        partial.rename(final)

    def stored(self, *, tenant: str | None = None, dataset: str | None = None) -> int:
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

    # --- reading --------------------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        return (*ARROW_SCHEMA.names, *PARTITIONS)

    def datasets(self) -> list[str]:
        if not self.events_dir.is_dir():
            return []
        return sorted(folder.name.removeprefix("dataset=") for folder in self.events_dir.glob("dataset=*")
                      if folder.is_dir())

    def partitions(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
                   tenants: Collection[str] | None = None) -> list[Path]:
        """The `tenant=*/day=*` folders of a dataset that hold files, of the tenants, whose day is in
        [since, until)."""
        first, last = day_range(since, until)
        wanted = None if tenants is None else {f"tenant={tenant}" for tenant in tenants}
        paths = []
        for folder in sorted((self.events_dir / f"dataset={dataset}").glob("tenant=*/day=*")):
            day = folder.name.removeprefix("day=")
            if wanted is not None and folder.parent.name not in wanted:
                continue
            if (first is None or day >= first) and (last is None or day <= last) and any(folder.glob("*.parquet")):
                paths.append(folder)
        return paths

    def read(self, spark: SparkSession, dataset: str, *, since: datetime | None = None,
             until: datetime | None = None, tenants: Collection[str] | None = None) -> DataFrame | None:
        """The day folders in the window (Spark reads only them); the partition folders give `dataset`,
        `tenant` and `day` columns."""
        paths = self.partitions(dataset, since=since, until=until, tenants=tenants)
        if not paths:
            return None
        return spark.read.schema(spark_schema()).option("basePath", str(self.events_dir)).parquet(*map(str, paths))

    def arrow_dataset(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
                      tenants: Collection[str] | None = None) -> ds.Dataset | None:
        """The files `read` would read, as a pyarrow dataset (partition columns included); None when empty."""
        files = [str(file) for folder in self.partitions(dataset, since=since, until=until, tenants=tenants)
                 for file in sorted(folder.glob("*.parquet"))]
        if not files:
            return None
        return ds.dataset(files, format="parquet", partitioning=ds.partitioning(flavor="hive"),
                          partition_base_dir=str(self.events_dir))

    def count(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
              tenants: Collection[str] | None = None) -> int:
        """Counted by Arrow from the same day folders as `read`: row-group metadata answers whole files, only
        the columns of the filter are read where it must. A file copied into the lake by hand, past the id
        index, counts twice here."""
        lake = self.arrow_dataset(dataset, since=since, until=until, tenants=tenants)
        if lake is None:
            return 0
        condition = pc.field("event", "id").is_valid() & pc.field("@timestamp").is_valid()
        moment = pa.timestamp("us", tz="UTC")
        if since is not None:
            condition = condition & (pc.field("@timestamp") >= pa.scalar(since.astimezone(UTC), moment))
        if until is not None:
            condition = condition & (pc.field("@timestamp") < pa.scalar(until.astimezone(UTC), moment))
        return int(lake.count_rows(filter=condition))
