"""The lake's arrival log: which files each committed write added, in commit order, and who has read how far.

Every write that stores events takes the next number of one counter (`arrival_seq`) in the transaction that
claims its ids and journals its files (`citysoc.store.journal`), and records each of its files with that
number, its tenant, dataset, event-time range and the fields some row of it holds (`lake_file`). The number
is the write's place in arrival order: a reader that remembers the last number it handled asks for what came
after it, whatever the events' own times. Because the number is taken inside the commit, a crash leaves a
write with its number or neither. The filled fields spare readers the files' footers
(`ParquetEventStore.fields_without_values`).

Compaction keeps the log true: a merged file takes the newest number of its inputs, so no event ever moves
to an older number than it arrived with (a reader may see it again, never miss it). Consumers register a
cursor (`consumer_cursor`); compaction merges only files every consumer has read, so merges never make old
events look new.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from citysoc.store.base import Arrival

DDL = (
    "CREATE TABLE IF NOT EXISTS arrival_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS lake_file (
        path TEXT PRIMARY KEY,          -- relative to the lake: dataset=../tenant=../day=../part-<id>.parquet
        seq INTEGER NOT NULL,           -- the arrival number of the write that stored it (a merge: its newest input's)
        dataset TEXT NOT NULL, tenant TEXT NOT NULL,
        first_us INTEGER NOT NULL,      -- event time range of its rows, microseconds since the epoch
        last_us INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        filled TEXT)                    -- JSON list of the leaf fields some row holds; NULL: not recorded""",
    "CREATE INDEX IF NOT EXISTS lake_file_seq ON lake_file (seq)",
    "CREATE TABLE IF NOT EXISTS consumer_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class LakeFile:
    """A data file of the lake as the arrival log knows it."""

    path: str
    dataset: str
    tenant: str
    first_us: int
    last_us: int
    rows: int
    filled: frozenset[str] | None = None  # leaf fields (dotted) some row holds; None: not known


def create(conn: sqlite3.Connection, events_dir: Path) -> None:
    """The tables; a lake written before the log existed has its files registered as one first arrival. A log
    from before files' `filled` fields were recorded gains the column, NULL (unknown) for its files."""
    new = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'arrival_seq'").fetchone() is None
    for statement in DDL:
        conn.execute(statement)
    if "filled" not in {row[1] for row in conn.execute("PRAGMA table_info(lake_file)")}:
        conn.execute("ALTER TABLE lake_file ADD COLUMN filled TEXT")
    if new:
        _register_existing(conn, events_dir)


def filled_fields(table: pa.Table) -> frozenset[str]:
    """The leaf fields (dotted paths; a list is one leaf) that some row of `table` holds, a leaf under a null
    struct being null: what the written file's footer statistics say (`null_count < rows`), known without
    reading it back."""
    filled: set[str] = set()
    while table.num_columns:
        nested = [name for name, kind in zip(table.column_names, table.schema.types, strict=True)
                  if pa.types.is_struct(kind)]
        filled.update(name for name, column in zip(table.column_names, table.columns, strict=True)
                      if name not in nested and column.null_count < len(column))
        table = table.select(nested).flatten()  # children keep their parent's nulls
    return frozenset(filled)


def filled_of(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, frozenset[str]]:
    """The recorded `filled` fields of those `paths` (relative) that have a record."""
    found: dict[str, frozenset[str]] = {}
    for start in range(0, len(paths), 500):
        part = list(paths[start:start + 500])
        found.update((path, frozenset(json.loads(filled))) for path, filled in conn.execute(
            f"SELECT path, filled FROM lake_file WHERE filled IS NOT NULL AND path IN ({','.join('?' * len(part))})",
            part))
    return found


def _filled_text(filled: Iterable[str] | None) -> str | None:
    return None if filled is None else json.dumps(sorted(filled))


def time_range(table: pa.Table) -> tuple[int, int]:
    """First and last `@timestamp` of a non-empty table, in microseconds since the epoch."""
    bounds = pc.min_max(table.column("@timestamp").cast(pa.int64()))
    return int(bounds["min"].as_py()), int(bounds["max"].as_py())


def record_write(conn: sqlite3.Connection, files: Sequence[LakeFile]) -> int:
    """Give a write its arrival number and record its files; call inside the transaction that commits them."""
    seq = _next(conn)
    conn.executemany("INSERT OR REPLACE INTO lake_file (path, seq, dataset, tenant, first_us, last_us, rows, filled) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(f.path, seq, f.dataset, f.tenant, f.first_us, f.last_us, f.rows, _filled_text(f.filled))
                      for f in files])
    return seq


def record_merge(conn: sqlite3.Connection, merged: str, inputs: Sequence[str]) -> None:
    """`merged` replaces `inputs`: it takes their newest arrival number, the union of their ranges and of their
    filled fields (unknown when one input's are). Call inside the transaction that journals the swap."""
    marks = ",".join("?" * len(inputs))
    seq, dataset, tenant, first, last, rows = conn.execute(
        f"SELECT max(seq), min(dataset), min(tenant), min(first_us), max(last_us), sum(rows) FROM lake_file "
        f"WHERE path IN ({marks})", list(inputs)).fetchone()
    recorded = filled_of(conn, inputs)
    filled = frozenset().union(*recorded.values()) if len(recorded) == len(set(inputs)) else None
    conn.execute(f"DELETE FROM lake_file WHERE path IN ({marks})", list(inputs))
    if seq is not None:
        conn.execute("INSERT OR REPLACE INTO lake_file (path, seq, dataset, tenant, first_us, last_us, rows, filled) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (merged, seq, dataset, tenant, first, last, rows, _filled_text(filled)))


def watermark(conn: sqlite3.Connection) -> int:
    """The arrival number of the last committed write (0 before any)."""
    row = conn.execute("SELECT seq FROM arrival_seq WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def arrivals(conn: sqlite3.Connection, *, after: int, upto: int,
             datasets: Iterable[str] | None = None) -> list[Arrival]:
    """Per write numbered in (`after`, `upto`] and its (dataset, tenant), what it stored (ordered by dataset,
    tenant, then arrival): a late batch and a live one of the same tenant keep their own event-time ranges."""
    query = ("SELECT dataset, tenant, min(first_us), max(last_us), sum(rows), seq FROM lake_file "
             "WHERE seq > ? AND seq <= ?")
    params: list[object] = [after, upto]
    if datasets is not None:
        wanted = sorted(set(datasets))
        query += f" AND dataset IN ({','.join('?' * len(wanted))})"
        params.extend(wanted)
    rows = conn.execute(query + " GROUP BY dataset, tenant, seq ORDER BY dataset, tenant, seq", params).fetchall()
    return [Arrival(dataset, tenant, int(first), int(last), int(count))
            for dataset, tenant, first, last, count, _ in rows]


def arrived_files(conn: sqlite3.Connection, *, dataset: str, after: int, upto: int) -> list[str]:
    """The files (relative paths) of a dataset stored by the writes numbered in (`after`, `upto`]."""
    return [path for path, in conn.execute("SELECT path FROM lake_file WHERE dataset = ? AND seq > ? AND seq <= ? "
                                           "ORDER BY seq, path", (dataset, after, upto))]


def set_cursor(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute("INSERT INTO consumer_cursor (name, seq) VALUES (?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq", (name, seq))


def drop_cursor(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("DELETE FROM consumer_cursor WHERE name = ?", (name,))


def cursors(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(seq) for name, seq in conn.execute("SELECT name, seq FROM consumer_cursor")}


def mergeable(conn: sqlite3.Connection) -> int | None:
    """The newest arrival number compaction may merge: what every consumer has read (None: no consumer)."""
    row = conn.execute("SELECT min(seq) FROM consumer_cursor").fetchone()
    return None if row[0] is None else int(row[0])


def seq_of(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, int]:
    marks = ",".join("?" * len(paths))
    return {path: int(seq) for path, seq in conn.execute(
        f"SELECT path, seq FROM lake_file WHERE path IN ({marks})", list(paths))} if paths else {}


def _next(conn: sqlite3.Connection) -> int:
    seq = watermark(conn) + 1
    conn.execute("INSERT INTO arrival_seq (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                 (seq,))
    return seq


def _register_existing(conn: sqlite3.Connection, events_dir: Path) -> None:
    """Files already in the lake (written before the log) become arrival 1, so a reader starting from 0 sees them."""
    files: list[LakeFile] = []
    for path in sorted(events_dir.glob("dataset=*/tenant=*/day=*/*.parquet")):
        if path.name.startswith((".", "_")):
            continue
        try:
            table = pq.read_table(path, columns=["@timestamp"])
        except (OSError, pa.ArrowException):
            continue  # not a file of ours
        if not table.num_rows or table.column("@timestamp").null_count == table.num_rows:
            continue
        first, last = time_range(table)
        files.append(LakeFile(path.relative_to(events_dir).as_posix(),
                              dataset=path.parent.parent.parent.name.removeprefix("dataset="),
                              tenant=path.parent.parent.name.removeprefix("tenant="),
                              first_us=first, last_us=last, rows=table.num_rows))
    if files:
        conn.execute("BEGIN IMMEDIATE")
        record_write(conn, files)
        conn.execute("COMMIT")
