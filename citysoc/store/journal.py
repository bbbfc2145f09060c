"""How a Parquet file enters the lake so that a crash at any instant leaves it wholly in or wholly out.

A new file is written and fsync'ed under `<lake>/_staging/` (a folder Spark's listing skips, like every name
starting with `_` or `.`), then one SQLite transaction in the index journals it, `staged -> final (replacing
...)`, with the run of event-id claims staged beside it (`citysoc.store.claims`). That commit is the instant
the file is stored:
- before it, nothing is claimed and the staged file is an orphan that `remove_orphans` deletes, so a replay
  writes the events again, once;
- after it, `complete` renames the staged file to its final name and removes the files it replaces
  (compaction). It is idempotent, so whoever opens the index next finishes an interrupted swap (`recover`).
Readers list only final names: they see a file whole or not at all, and during a compaction's swap they may
see the merged file beside the old ones (the same events twice), never neither.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from citysoc.store.durable import fsync_dir, make_dirs_durably

STAGING = "_staging"
WRITE_PREFIX = ".part-"  # staged by a write, under the lake's index lock
COMPACT_PREFIX = ".compact-"  # staged by a compaction, under the compaction lock only

JOURNAL_DDL = """
CREATE TABLE IF NOT EXISTS file_journal (
    staged TEXT PRIMARY KEY,    -- relative to the lake: _staging/<name>
    final TEXT NOT NULL,        -- relative to the lake: dataset=../tenant=../day=../part-<id>.parquet
    replaces TEXT NOT NULL      -- JSON list of relative paths removed once `final` is in place
)
"""


@dataclass(frozen=True)
class FileSwap:
    """One staged file, where it goes, and what it replaces (paths relative to the lake root)."""

    staged: str
    final: str
    replaces: tuple[str, ...] = ()


def staged_path(root: Path, prefix: str, *, suffix: str = ".parquet") -> Path:
    """A fresh name for a file being written; the staging folder exists (durably) when this returns."""
    staging = root / STAGING
    if not staging.is_dir():
        make_dirs_durably(staging)
    return staging / f"{prefix}{uuid.uuid4().hex}{suffix}.tmp"


def record(conn: sqlite3.Connection, swaps: Iterable[FileSwap]) -> None:
    """Journal the swaps; call inside the transaction that claims their events."""
    conn.executemany("INSERT INTO file_journal (staged, final, replaces) VALUES (?, ?, ?)",
                     ((swap.staged, swap.final, json.dumps(list(swap.replaces))) for swap in swaps))


def complete(root: Path, swaps: Iterable[FileSwap]) -> None:
    """Put committed swaps in place: rename each staged file to its final name, then remove what it replaces.
    Safe to repeat: a step already done is skipped."""
    touched: set[Path] = set()
    for swap in swaps:
        staged, final = root / swap.staged, root / swap.final
        if staged.exists():
            make_dirs_durably(final.parent)
            staged.rename(final)
            touched.add(final.parent)
        for old in swap.replaces:
            (root / old).unlink(missing_ok=True)
            touched.add((root / old).parent)
    for folder in touched:  # the new names (and the removals) survive power loss, not only kill -9
        fsync_dir(folder)


def pending(conn: sqlite3.Connection) -> list[FileSwap]:
    return [FileSwap(staged, final, tuple(json.loads(replaces)))
            for staged, final, replaces in conn.execute("SELECT staged, final, replaces FROM file_journal")]


def forget(conn: sqlite3.Connection, swaps: Iterable[FileSwap]) -> None:
    """Drop the journal rows of completed swaps. Not flushed to disk: a row that comes back after power loss
    is completed again, which does nothing."""
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM file_journal WHERE staged = ?", ((swap.staged,) for swap in swaps))
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.execute("PRAGMA synchronous = FULL")


def settle(conn: sqlite3.Connection, root: Path, swaps: Iterable[FileSwap]) -> None:
    """After a failure around a commit (even an interrupt just after it returned): complete the swaps the
    journal holds, which were committed, and delete the staged files of the others, which were not."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    journaled = {staged for staged, in conn.execute("SELECT staged FROM file_journal")}
    complete(root, [swap for swap in swaps if swap.staged in journaled])
    for swap in swaps:
        if swap.staged not in journaled:
            (root / swap.staged).unlink(missing_ok=True)


def recover(conn: sqlite3.Connection, root: Path) -> None:
    """Finish every swap a crash interrupted after its commit."""
    swaps = pending(conn)
    if swaps:
        complete(root, swaps)
        forget(conn, swaps)


def remove_orphans(conn: sqlite3.Connection, root: Path, *, prefixes: tuple[str, ...]) -> int:
    """Delete staged files no journal row names (a crash before their commit); only for the given prefixes,
    whose writers the caller has locked out. Returns how many were deleted."""
    staging = root / STAGING
    if not staging.is_dir():
        return 0
    journaled = {staged for staged, in conn.execute("SELECT staged FROM file_journal")}
    removed = 0
    for path in staging.iterdir():
        if path.name.startswith(prefixes) and f"{STAGING}/{path.name}" not in journaled:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
