"""The embedded default: a Parquet lake partitioned by dataset, tenant and day.

Layout: `<lake>/events/dataset=<dataset>/tenant=<tenant>/day=<YYYY-MM-DD>/part-<id>.parquet`, every
file in the one schema of `citysoc.schema` less the leaves none of its rows fills (`narrowed`: a dataset
fills a few dozen of its 200), so read with that schema (Spark's `read`, `arrow_dataset`, `pq.read_table(...,
schema=ARROW_SCHEMA)`) every file gives the table that was written. Dataset comes first because the
correlator makes one pass per log source.

Replays are no-ops: an id index (sorted runs of keys per partition under `_claims/`; `citysoc.store.claims`)
records every stored `event.id` per tenant, dataset and day. A write is atomic and crash-safe: its files and
its run of new claims are staged under `_staging/`, journalled in one transaction of the SQLite index
(`_ids.sqlite`), then take their final names (`citysoc.store.journal`). A kill -9 at any instant leaves each
write wholly stored or not at all: no duplicate, no lost event once `write_table` returned, and no file a reader trips
on (staged files are hidden, and the next writer finishes or discards them). `compact` merges a
partition's small files the same way. The same transaction gives each write its arrival number and records
its files in the arrival log (`citysoc.store.arrivals`), which continuous detection reads. Lock order:
`.compact.lock` (compactions) before `.lock` (the index, every writer).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from citysoc.schema import ARROW_SCHEMA, PARQUET_OPTIONS, column_paths, event_time, spark_schema, to_row
from citysoc.store import arrivals, claims, journal, lookup
from citysoc.store.arrivals import LakeFile
from citysoc.store.base import Arrival, EventStore, WriteResult, register_store
from citysoc.store.compaction import plan_merges, write_merged
from citysoc.store.durable import fsync_dir, fsync_file, make_dirs_durably
from citysoc.store.journal import COMPACT_PREFIX, WRITE_PREFIX, FileSwap
from citysoc.tenancy import validate_tenant_id

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW_GROUP_ROWS = 64 * 1024  # Spark splits a file's work by row group
PARTITIONS = ("dataset", "tenant", "day")  # the folders: events/dataset=<d>/tenant=<t>/day=<YYYY-MM-DD>


@dataclass(frozen=True)
class _NewClaims:
    """The keys a write claims in one partition day (sorted by primary), and the runs already there."""

    folder: Path
    primary: np.ndarray
    secondary: np.ndarray
    found: list[claims.Run]


def _sorted_distinct(keys: claims.Keys, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of `rows` (every row when None): each distinct key's first row, sorted by primary, with its key words.
    The usual table has no shared primary and takes one sort; one that has (a repeated event, or 47 equal bits
    of two ids) is sorted by both words, stably, so each key's first row comes first: O(n log n) either way."""
    primary = keys.primary if rows is None else keys.primary[rows]
    order = np.argsort(primary, kind="stable")
    ordered = primary[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        secondary = keys.secondary if rows is None else keys.secondary[rows]
        order = np.lexsort((secondary, primary))  # stable: equal keys stay in row order
        ordered, following = primary[order], secondary[order]
        first = np.ones(len(order), bool)
        first[1:] = (ordered[1:] != ordered[:-1]) | (following[1:] != following[:-1])
        order = order[first]
    if rows is not None:
        order = rows[order]
    return order, keys.primary[order], keys.secondary[order]


def partition_dir(events_dir: Path, *, dataset: str, tenant: str, day: str) -> Path:
    return events_dir / f"dataset={dataset}" / f"tenant={tenant}" / f"day={day}"


@lru_cache(maxsize=65536)
def _fields_with_values(path: str, size: int, modified_ns: int, fields: tuple[str, ...]) -> frozenset[str]:
    """Those of `fields` that some row of the file holds, from its footer's statistics (a column without a
    null count counts as holding values). `size` and `modified_ns` key the cache: a file is never
    rewritten in place (writes and compaction give new files), but the test costs nothing."""
    metadata = pq.read_metadata(path)
    columns = {metadata.schema.column(index).path: index for index in range(metadata.num_columns)}
    found: set[str] = set()
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for name in fields:
            index = columns.get(name)
            if name in found or index is None:  # a field the file predates reads as null
                continue
            stats = row_group.column(index).statistics
            if stats is None or not stats.has_null_count or stats.null_count < row_group.num_rows:
                found.add(name)
    return frozenset(found)


def narrowed(table: pa.Table, filled: Collection[str]) -> pa.Table:
    """`table` (ARROW_SCHEMA) without the leaves no row fills (`filled`: dotted leaf paths, as
    `arrivals.filled_fields` gives them), for writing: a file of one dataset then encodes the few dozen leaves
    its parser fills, not the schema's 200. Every column and every struct stays (a struct keeps at least one
    leaf), valid where it was, so a reader that reads with the event schema (Spark, `arrow_dataset`, compaction's
    cast) gets back exactly `table`: the leaves left out read as null, as those of an older schema's files do."""
    arrays: list[pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_struct(field.type) and column.num_chunks:
            chunks = [_narrowed_struct(chunk, field, filled, f"{field.name}.") for chunk in column.chunks]
            field = chunks[0][1]
            column = pa.chunked_array([chunk for chunk, _ in chunks], field.type)
        arrays.append(column)
        fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def _narrowed_struct(array: pa.StructArray, field: pa.Field, filled: Collection[str],
                     prefix: str) -> tuple[pa.StructArray, pa.Field]:
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    first_leaf: tuple[pa.Array, pa.Field] | None = None
    for index, child in enumerate(field.type):
        values = array.field(index)
        name = f"{prefix}{child.name}"
        if pa.types.is_struct(child.type):
            values, child = _narrowed_struct(values, child, filled, f"{name}.")
        elif name not in filled:
            first_leaf = first_leaf or (values, child)
            continue
        arrays.append(values)
        fields.append(child)
    if not arrays and first_leaf is not None:  # a struct of null leaves keeps one, so it stays in the file
        arrays, fields = [first_leaf[0]], [first_leaf[1]]
    narrow = pa.StructArray.from_arrays(arrays, fields=fields, mask=array.is_null() if array.null_count else None)
    return narrow, pa.field(field.name, narrow.type, field.nullable, field.metadata)


@lru_cache(maxsize=256)  # a source's passes give the same few narrowed schemas
def _compression(schema: pa.Schema, filled: frozenset[str]) -> dict[str, str]:
    """Per column of a narrowed file: zstd for the leaves its rows fill, none for the null leaves kept to hold a
    struct (their pages are a few bytes of levels, and each zstd call costs about 45 µs of CPU whatever its size:
    34 of an sshd file's 68 leaves, 1.5 ms a write)."""
    return {path: "zstd" if path.removesuffix(".list.element") in filled else "none" for path in column_paths(schema)}


def day_range(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    """First and last UTC day (`YYYY-MM-DD`, the `day=` folders) that [since, until) touches."""
    for bound in (since, until):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    first = since.astimezone(UTC).date().isoformat() if since is not None else None
    last = (until.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat() if until is not None else None
    return first, last


def _input_files(frame: DataFrame) -> list[str]:
    """`frame.inputFiles()` joined in the JVM and sent as one string: PySpark's own fetches the array's
    elements one Py4J round trip each (the bench lake's 140 files: about 290 a detection run)."""
    jvm: Any = frame.sparkSession.sparkContext._jvm
    files = cast(Any, frame)._jdf.inputFiles()
    joined: str = jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(files).mkString("\n")
    return joined.split("\n") if joined else []


@register_store
class ParquetEventStore(EventStore):
    """Parquet files under `events_dir`; readable by Spark, pyarrow and DuckDB alike."""

    name = "parquet"

    def __init__(self, events_dir: Path) -> None:
        self.events_dir = events_dir
        self._orphans_removed = False
        # one index connection per thread, kept open: closing the last connection to a WAL database
        # checkpoints it, an fsync'ed copy that would otherwise cost every write
        self._local = threading.local()

    @contextmanager
    def _locked_index(self) -> Iterator[sqlite3.Connection]:
        """The id index, this process alone writing the lake; interrupted swaps are finished first."""
        if not self.events_dir.is_dir():
            make_dirs_durably(self.events_dir)
        with open(self.events_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time per lake
            conn = self._connection()
            try:
                journal.recover(conn, self.events_dir)
                if not self._orphans_removed:
                    self._remove_orphans(conn)
                    self._orphans_removed = True
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the index (called holding the lake lock: it may create or migrate it)."""
        path = self.events_dir / "_ids.sqlite"
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        inode = path.stat().st_ino if path.exists() else None
        if conn is not None and inode == self._local.inode:
            return conn
        if conn is not None:
            conn.close()  # the index was replaced or removed under us
        # autocommit: every transaction is opened and committed explicitly, at the instant it means
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # a COMMIT is on disk when it returns
        conn.execute(journal.JOURNAL_DDL)
        arrivals.create(conn, self.events_dir)
        self._migrate_claims(conn)
        self._local.conn, self._local.inode = conn, path.stat().st_ino
        return conn

    def _migrate_claims(self, conn: sqlite3.Connection) -> None:
        """Rebuild the claims of a lake indexed in SQLite (`claims.LEGACY_TABLES`) as runs, from its files, which
        are the truth (an id claimed whose file a crash lost is then free to be written again): one run per file
        and day, committed with the legacy tables' removal, so a crash leaves the old index or the new one.
        Memory: one file's keys at a time."""
        legacy = [name for name in claims.LEGACY_TABLES if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()]
        if not legacy:
            return
        journal.recover(conn, self.events_dir)  # a committed write's files in place before they are read
        stale = [self._relative(path) for path in claims.all_runs(self.events_dir)]
        swaps: list[FileSwap] = []
        try:
            for path in sorted(self.events_dir.glob("dataset=*/tenant=*/day=*/*.parquet")):
                if path.name.startswith((".", "_")):
                    continue
                try:
                    table = pq.read_table(path, columns=["@timestamp", "event.id"])  # the leaf alone
                    ids, moments = table.column("id"), table.column("@timestamp")
                except (OSError, KeyError, pa.ArrowException):
                    continue  # not a file of ours: it held no claims either
                valid = pc.and_(pc.is_valid(ids), pc.is_valid(moments))
                if not pc.all(valid).as_py():
                    ids, moments = ids.filter(valid), moments.filter(valid)
                if not len(ids):
                    continue
                keys = claims.keys_of(ids, moments)
                tenant = path.parent.parent.name.removeprefix("tenant=")
                dataset = path.parent.parent.parent.name.removeprefix("dataset=")
                days = np.unique(keys.day)
                for day in days.tolist():
                    _, primary, secondary = _sorted_distinct(keys, np.flatnonzero(keys.day == day))
                    folder = claims.partition(self.events_dir, dataset=dataset, tenant=tenant, day=day)
                    staged = journal.staged_path(self.events_dir, WRITE_PREFIX, suffix=claims.RUN_SUFFIX)
                    swaps.append(FileSwap(self._relative(staged), self._relative(folder / claims.run_name()),
                                          tuple(stale) if not swaps else ()))
                    claims.write_run(staged, primary, secondary)
            if swaps:
                fsync_dir(self.events_dir / journal.STAGING)
            conn.execute("BEGIN IMMEDIATE")
            journal.record(conn, swaps)
            for name in legacy:
                conn.execute(f"DROP TABLE {name}")
            conn.execute("COMMIT")
        except BaseException:
            with suppress(Exception):
                journal.settle(conn, self.events_dir, swaps)
            raise
        journal.complete(self.events_dir, swaps)
        journal.forget(conn, swaps)
        if not swaps:
            for stray in stale:  # runs without a file in the lake: nothing of theirs is stored
                (self.events_dir / stray).unlink(missing_ok=True)

    def _remove_orphans(self, conn: sqlite3.Connection) -> None:
        prefixes: tuple[str, ...] = (WRITE_PREFIX,)  # writers stage only while holding the index lock, which we hold
        with open(self.events_dir / ".compact.lock", "a") as compacting:
            try:  # a compaction's staged file is an orphan only when no compaction runs
                fcntl.flock(compacting, fcntl.LOCK_EX | fcntl.LOCK_NB)
                prefixes += (COMPACT_PREFIX,)
            except BlockingIOError:
                pass
            journal.remove_orphans(conn, self.events_dir, prefixes=prefixes)

    def recover(self) -> None:
        """Finish or discard what a crashed writer left (done by every write anyway; call at start-up so that
        readers see an interrupted write's events before the next write)."""
        with self._locked_index():
            pass

    def write(self, *, tenant: str, dataset: str, events: Iterable[Mapping[str, Any]]) -> WriteResult:
        validate_tenant_id(tenant)
        rows = [to_row(event) for event in events]
        for row in rows:
            event_time(row)  # a TypeError that names the problem, before Arrow's
        if not rows:
            return WriteResult(stored=0, duplicates=0)
        return self.write_table(tenant=tenant, dataset=dataset, table=pa.Table.from_pylist(rows, schema=ARROW_SCHEMA))

    def write_table(self, *, tenant: str, dataset: str, table: pa.Table) -> WriteResult:
        """Store an Arrow table of events (`citysoc.schema.ARROW_SCHEMA`) of one tenant and dataset, atomically:
        when this returns the new events are durable and visible, and after a crash at any instant either all
        of them are stored or none (writing the table again then stores them, once). Rows whose `event.id` is
        stored already, or repeats an earlier row of the table, are skipped."""
        validate_tenant_id(tenant)
        table = table.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
        ids = pc.struct_field(table.column("event"), "id")
        if ids.null_count:
            raise ValueError("every event needs an event.id")
        if table.column("@timestamp").null_count:
            raise ValueError("every event needs an @timestamp")
        keys = claims.keys_of(ids, table.column("@timestamp"))
        with self._locked_index() as conn:
            keep, claimed = self._unclaimed(tenant=tenant, dataset=dataset, keys=keys)
            if len(keep):
                unchanged = len(keep) == table.num_rows  # every row new: no copy
                swaps, files = self._stage(tenant=tenant, dataset=dataset,
                                           table=table if unchanged else table.take(pa.array(keep)))
                try:
                    swaps += self._stage_claims(claimed)  # after the data files: those are renamed first
                    fsync_dir(self.events_dir / journal.STAGING)  # the names the journal will point at are durable
                    conn.execute("BEGIN IMMEDIATE")
                    journal.record(conn, swaps)
                    arrivals.record_write(conn, files)
                    conn.execute("COMMIT")  # the instant the events are stored: claims and files together
                except BaseException:
                    with suppress(Exception):  # what is left is finished or discarded by the next writer
                        journal.settle(conn, self.events_dir, swaps)
                    raise
                journal.complete(self.events_dir, swaps)
                journal.forget(conn, swaps)
        return WriteResult(stored=len(keep), duplicates=table.num_rows - len(keep))

    def _unclaimed(self, *, tenant: str, dataset: str, keys: claims.Keys) -> tuple[np.ndarray, list[_NewClaims]]:
        """The rows to store (in table order: each key's first row, of keys no run of its partition holds), and
        per partition day the new keys with the runs found there."""
        if not len(keys.day):
            return np.empty(0, np.int64), []
        first_day, last_day = int(keys.day.min()), int(keys.day.max())  # one day, usually: no sort (np.unique)
        days = [first_day] if first_day == last_day else np.unique(keys.day).tolist()
        keep: list[np.ndarray] = []
        claimed: list[_NewClaims] = []
        for day in days:
            rows = np.flatnonzero(keys.day == day) if len(days) > 1 else None
            order, primary, secondary = _sorted_distinct(keys, rows)
            folder = claims.partition(self.events_dir, dataset=dataset, tenant=tenant, day=day)
            found = claims.runs(folder)
            new = claims.unclaimed(primary, secondary, found)
            if new.any():
                keep.append(order[new])
                claimed.append(_NewClaims(folder, primary[new], secondary[new], found))
        rows_kept = np.sort(np.concatenate(keep)) if keep else np.empty(0, np.int64)
        return rows_kept, claimed

    def _stage_claims(self, claimed: list[_NewClaims]) -> list[FileSwap]:
        """One staged, fsync'ed run per partition day with its new keys, merged with the partition's runs up to
        twice its size (`claims.to_merge`), which it replaces (the caller fsyncs the staging folder)."""
        swaps: list[FileSwap] = []
        try:
            for new in claimed:
                absorbed = claims.to_merge(new.found, len(new.primary))
                primary, secondary = claims.merged(new.primary, new.secondary, absorbed)
                staged = journal.staged_path(self.events_dir, WRITE_PREFIX, suffix=claims.RUN_SUFFIX)
                swaps.append(FileSwap(self._relative(staged), self._relative(new.folder / claims.run_name()),
                                      tuple(self._relative(run.path) for run in absorbed)))
                claims.write_run(staged, primary, secondary)
        except BaseException:
            for swap in swaps:
                (self.events_dir / swap.staged).unlink(missing_ok=True)
            raise
        return swaps

    def _stage(self, *, tenant: str, dataset: str, table: pa.Table) -> tuple[list[FileSwap], list[LakeFile]]:
        """Write one hidden, fsync'ed file per day of the table (the caller fsyncs the staging folder); the swaps
        that will give them their names, and the files as the arrival log records them."""
        days = table.column("@timestamp").cast(pa.date32())  # UTC days: the type's zone is UTC
        bounds = pc.min_max(days)
        swaps: list[FileSwap] = []
        files: list[LakeFile] = []
        try:
            for day in [bounds["min"]] if bounds["min"] == bounds["max"] else pc.unique(days):
                staged = journal.staged_path(self.events_dir, WRITE_PREFIX)
                swaps.append(FileSwap(self._relative(staged), self._relative(
                    partition_dir(self.events_dir, dataset=dataset, tenant=tenant, day=day.as_py().isoformat())
                    / f"part-{uuid.uuid4().hex}.parquet")))
                part = table if bounds["min"] == bounds["max"] else table.filter(pc.equal(days, day))
                filled = arrivals.filled_fields(part)
                written = narrowed(part, filled)
                pq.write_table(written, staged, row_group_size=ROW_GROUP_ROWS,
                               **{**PARQUET_OPTIONS, "compression": _compression(written.schema, filled)})
                fsync_file(staged)
                first, last = arrivals.time_range(part)
                files.append(LakeFile(swaps[-1].final, dataset=dataset, tenant=tenant, first_us=first, last_us=last,
                                      rows=part.num_rows, filled=filled))
        except BaseException:
            for swap in swaps:
                (self.events_dir / swap.staged).unlink(missing_ok=True)
            raise
        return swaps, files

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.events_dir).as_posix()

    def compact(self, dataset: str | None = None, *, min_files: int = 8) -> int:
        """Merge the small files of every partition (tenant and day) of `dataset` (every dataset when None)
        that holds at least `min_files` of them into files of up to `compaction.TARGET_ROWS` rows; returns how
        many files were merged away. Files that are not the store's schema, or not readable, are left alone.

        Each merged file replaces its inputs atomically (staged, then journalled with them in the id index): a
        crash at any instant leaves the old files or the merged one. A reader listing a partition meanwhile
        may briefly see both, the same events twice, which the detection engine de-duplicates by event id;
        it never sees neither. A reader that listed the old files before the swap and opens one after it
        finds it gone and must read again, so run compaction between detection passes.

        Only files every registered consumer has read (`set_consumer_cursor`) are merged, and a merged file
        takes the newest arrival number of its inputs: compaction never hides an unread event from
        `arrivals`, nor makes a read one new again."""
        if min_files < 2:
            raise ValueError("min_files must be at least 2: merging one file changes nothing")
        if not self.events_dir.is_dir():
            return 0
        merged = 0
        with open(self.events_dir / ".compact.lock", "a") as compacting:
            fcntl.flock(compacting, fcntl.LOCK_EX)  # one compaction at a time; writers go on meanwhile
            with self._locked_index() as conn:
                journal.remove_orphans(conn, self.events_dir, prefixes=(COMPACT_PREFIX,))
                read_upto = arrivals.mergeable(conn)
            for name in [dataset] if dataset is not None else self.datasets():
                for folder in self.partitions(name):
                    for group in plan_merges(folder, min_files=min_files, skip=self._unread(folder, read_upto)):
                        staged = journal.staged_path(self.events_dir, COMPACT_PREFIX)
                        try:
                            write_merged(group, staged, row_group_rows=ROW_GROUP_ROWS)
                            fsync_dir(staged.parent)
                        except BaseException:
                            staged.unlink(missing_ok=True)
                            raise
                        swap = FileSwap(self._relative(staged),
                                        self._relative(folder / f"part-{uuid.uuid4().hex}.parquet"),
                                        tuple(self._relative(path) for path in group))
                        with self._locked_index() as conn:
                            try:
                                conn.execute("BEGIN IMMEDIATE")
                                journal.record(conn, [swap])
                                arrivals.record_merge(conn, swap.final, swap.replaces)
                                conn.execute("COMMIT")  # the instant the merged file replaces its inputs
                            except BaseException:
                                with suppress(Exception):
                                    journal.settle(conn, self.events_dir, [swap])
                                raise
                            journal.complete(self.events_dir, [swap])
                            journal.forget(conn, [swap])
                        merged += len(group)
        return merged

    def _unread(self, folder: Path, read_upto: int | None) -> set[Path]:
        """The files of `folder` some consumer has not read yet (arrived after `read_upto`)."""
        if read_upto is None:
            return set()
        paths = [self._relative(path) for path in folder.glob("*.parquet")]
        with self._locked_index() as conn:
            marks = arrivals.seq_of(conn, paths)
        return {self.events_dir / path for path, seq in marks.items() if seq > read_upto}

    # --- arrival order --------------------------------------------------------------------------------

    def arrival_watermark(self) -> int:
        """The number of the last committed write; taken under the lake lock, so every file up to it is in
        place (an interrupted swap is finished first)."""
        with self._locked_index() as conn:
            return arrivals.watermark(conn)

    def arrivals(self, *, after: int, upto: int, datasets: Collection[str] | None = None) -> list[Arrival]:
        with self._locked_index() as conn:
            return arrivals.arrivals(conn, after=after, upto=upto, datasets=datasets)

    def arrived_files(self, dataset: str, *, after: int, upto: int) -> list[Path]:
        """The files of `dataset` the writes numbered in (`after`, `upto`] stored (or merges of them)."""
        with self._locked_index() as conn:
            return [self.events_dir / path for path in arrivals.arrived_files(conn, dataset=dataset, after=after,
                                                                               upto=upto)]

    def set_consumer_cursor(self, name: str, mark: int) -> None:
        with self._locked_index() as conn:
            conn.execute("BEGIN IMMEDIATE")
            arrivals.set_cursor(conn, name, mark)
            conn.execute("COMMIT")

    def drop_consumer_cursor(self, name: str) -> None:
        """Forget a consumer that will not come back (compaction then no longer waits for it)."""
        with self._locked_index() as conn:
            conn.execute("BEGIN IMMEDIATE")
            arrivals.drop_cursor(conn, name)
            conn.execute("COMMIT")

    def stored(self, *, tenant: str | None = None, dataset: str | None = None) -> int:
        """Stored events, optionally for one tenant and/or dataset (from the id index)."""
        if not (self.events_dir / "_ids.sqlite").exists():
            return 0
        with self._locked_index():  # interrupted swaps finished: each run file counted once
            return claims.count(self.events_dir, tenant=tenant, dataset=dataset)

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

    def fields_without_values(self, frame: DataFrame, fields: Collection[str]) -> frozenset[str]:
        """For the very files Spark listed for `frame` (`inputFiles`): the detection job then reads none of the
        entity columns a dataset never fills (CloudTrail has no file hashes, sshd no user agents). What each
        file fills comes from the arrival log, recorded when the file was written (`arrivals.filled_fields`),
        else from its footer (a file from before that record, or copied in by hand), cached per file. Unknown
        (nothing) when a file is gone or not local."""
        wanted = tuple(sorted(fields))
        empty = set(wanted)
        root = os.path.abspath(self.events_dir) + os.sep
        paths: list[str] = []
        for uri in _input_files(frame):
            parsed = urlparse(uri)
            if parsed.scheme not in ("", "file"):
                return frozenset()
            paths.append(unquote(parsed.path))
        recorded = self._recorded_filled([path.removeprefix(root) for path in paths if path.startswith(root)])
        for path in paths:
            filled = recorded.get(path.removeprefix(root)) if path.startswith(root) else None
            if filled is None:
                try:
                    status = os.stat(path)
                    filled = _fields_with_values(path, status.st_size, status.st_mtime_ns, wanted)
                except (OSError, pa.ArrowException):  # compacted away meanwhile: the scan will say so
                    return frozenset()
            empty -= filled
            if not empty:
                break
        return frozenset(empty)

    def _recorded_filled(self, paths: Sequence[str]) -> dict[str, frozenset[str]]:
        """The arrival log's `filled` fields of those `paths` (relative, posix) it records; read without the lake
        lock (the index is in WAL mode: a reader never waits for a writer), by a connection of this thread that
        never creates or migrates anything. Nothing when the index is missing or predates the record."""
        index = self.events_dir / "_ids.sqlite"
        if not paths:
            return {}
        try:
            inode = index.stat().st_ino
            conn: sqlite3.Connection | None = getattr(self._local, "reader", None)
            if conn is None or inode != self._local.reader_inode:
                if conn is not None:
                    conn.close()  # the index was replaced under us
                conn = sqlite3.connect(f"{index.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
                self._local.reader, self._local.reader_inode = conn, inode
            return arrivals.filled_of(conn, [path.replace(os.sep, "/") for path in paths])
        except (OSError, sqlite3.Error):
            return {}

    def arrow_dataset(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
                      tenants: Collection[str] | None = None) -> ds.Dataset | None:
        """The files `read` would read, as a pyarrow dataset (partition columns included); None when empty."""
        files = [str(file) for folder in self.partitions(dataset, since=since, until=until, tenants=tenants)
                 for file in sorted(folder.glob("*.parquet"))]
        if not files:
            return None
        found = ds.dataset(files, format="parquet", partitioning=ds.partitioning(flavor="hive"),
                           partition_base_dir=str(self.events_dir))
        # every file read as the event schema: a file holds only the leaves some row of it fills (`narrowed`)
        partitions = [field for field in found.schema if field.name not in ARROW_SCHEMA.names]
        return ds.dataset(files, schema=pa.schema([*ARROW_SCHEMA, *partitions]), format="parquet",
                          partitioning=ds.partitioning(flavor="hive"), partition_base_dir=str(self.events_dir))

    def events_by_id(self, *, tenant: str, ids: Collection[str],
                     windows: Collection[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
        """Read from the tenant's day folders the windows touch, every dataset (`citysoc.store.lookup`); a file
        that compaction replaced meanwhile makes the lookup list the folders again."""
        validate_tenant_id(tenant)  # it names a folder
        days = lookup.wanted_days(windows)
        if not ids or not days:
            return []
        for attempt in range(lookup.READ_ATTEMPTS):
            files = [file for name in self.datasets()
                     for folder in lookup.tenant_day_folders(self.events_dir / f"dataset={name}", tenant, days)
                     for file in sorted(folder.glob("*.parquet"))]
            try:
                return lookup.find_events(files, tenant=tenant, ids=ids, windows=windows)
            except FileNotFoundError:
                if attempt + 1 == lookup.READ_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

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
