"""Dead-letter store: every record a collector could not parse, with the reason, nothing dropped.

Kept in one SQLite file under `$SOC_HOME/deadletter/` so operators can list, count and replay it.
Entries have deterministic ids (tenant, source, origin, raw), so re-ingesting a file does not add its
bad lines again.

Bounded: a letter keeps at most `MAX_RAW_CHARS` of the record. A longer record keeps its beginning plus
its whole size in bytes and its SHA-256 (`raw_size`, `raw_sha256`), which is enough to find it again at the
sender, and never enough to make one letter a gigabyte (SQLite refuses strings over 1e9 bytes; the store
would fail for everyone). Reasons and origins are bounded the same way.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citysoc.ids import stable_id

MAX_RAW_CHARS = 64 * 1024
MAX_REASON_CHARS = 2048
MAX_ORIGIN_CHARS = 1024

_DDL = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    received TEXT NOT NULL,
    raw_size INTEGER,
    raw_sha256 TEXT
)
"""
# Columns added after the first release: a store created before them gets them on first use.
_ADDED_COLUMNS = {"raw_size": "INTEGER", "raw_sha256": "TEXT"}
_COLUMNS = "id, tenant, source, origin, reason, raw, received, raw_size, raw_sha256"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class DeadLetter:
    """One unparsable record. `origin` says where it came from, e.g. `auth.log:17`.

    `raw` is the record (redacted by the collector), cut to `MAX_RAW_CHARS`; when it was cut, `raw_size`
    is the whole record's size in UTF-8 bytes and `raw_sha256` its digest. A reader that only ever held the
    beginning of a record passes both itself.
    """

    tenant: str
    source: str
    origin: str
    reason: str
    raw: str
    received: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    raw_size: int | None = None
    raw_sha256: str | None = None

    def __post_init__(self) -> None:
        # frozen: bounding happens once, here, so no caller can build an unbounded letter
        if len(self.raw) > MAX_RAW_CHARS:
            whole = self.raw.encode("utf-8", errors="replace")
            if self.raw_size is None:
                object.__setattr__(self, "raw_size", len(whole))
            if self.raw_sha256 is None:
                object.__setattr__(self, "raw_sha256", hashlib.sha256(whole).hexdigest())
            object.__setattr__(self, "raw", self.raw[:MAX_RAW_CHARS])
        object.__setattr__(self, "reason", _clip(self.reason, MAX_REASON_CHARS))
        object.__setattr__(self, "origin", _clip(self.origin, MAX_ORIGIN_CHARS))

    @property
    def id(self) -> str:
        # a letter that holds the whole record keeps the id it always had; a cut one adds its digest
        extra = (self.raw_sha256,) if self.raw_sha256 else ()
        return stable_id("dead-letter", self.tenant, self.source, self.origin, self.raw, *extra)


class DeadLetterStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "deadletter.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.execute(_DDL)
        present = {row[1] for row in conn.execute("PRAGMA table_info(dead_letter)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE dead_letter ADD COLUMN {name} {kind}")
        return conn

    def put(self, letters: Iterable[DeadLetter]) -> int:
        """Store the letters; returns how many were new."""
        conn = self._connect()
        try:
            with conn:
                return sum(
                    conn.execute(
                        f"INSERT OR IGNORE INTO dead_letter ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (letter.id, letter.tenant, letter.source, letter.origin, letter.reason, letter.raw,
                         letter.received, letter.raw_size, letter.raw_sha256),
                    ).rowcount
                    for letter in letters
                )
        finally:
            conn.close()

    def list(self, *, tenant: str | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        conn = self._connect()
        try:
            query = "SELECT tenant, source, origin, reason, raw, received, raw_size, raw_sha256 FROM dead_letter"
            params: list[str | int] = []
            if tenant:
                query += " WHERE tenant = ?"
                params.append(tenant)
            query += " ORDER BY received, origin LIMIT ?"
            params.append(limit)
            for row in conn.execute(query, params):
                yield asdict(DeadLetter(*row))
        finally:
            conn.close()

    def count(self, *, tenant: str | None = None) -> int:
        if not self.path.exists():
            return 0
        conn = self._connect()
        try:
            if tenant:
                return int(conn.execute("SELECT count(*) FROM dead_letter WHERE tenant = ?", (tenant,)).fetchone()[0])
            return int(conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0])
        finally:
            conn.close()
