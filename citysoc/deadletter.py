"""Dead-letter store: every record a collector could not parse, with the reason, nothing dropped.

Kept in one SQLite file under `$SOC_HOME/deadletter/` so operators can list, count and replay it.
Entries have deterministic ids (tenant, source, origin, raw), so re-ingesting a file does not add its
bad lines again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from citysoc.ids import stable_id

_DDL = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    received TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class DeadLetter:
    """One unparsable record. `origin` says where it came from, e.g. `auth.log:17`."""

    tenant: str
    source: str
    origin: str
    reason: str
    raw: str
    received: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def id(self) -> str:
        return stable_id("dead-letter", self.tenant, self.source, self.origin, self.raw)


class DeadLetterStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "deadletter.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.execute(_DDL)
        return conn

    def put(self, letters: Iterable[DeadLetter]) -> int:
        """Store the letters; returns how many were new."""
        conn = self._connect()
        try:
            with conn:
                return sum(
                    conn.execute(
                        "INSERT OR IGNORE INTO dead_letter VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (letter.id, letter.tenant, letter.source, letter.origin, letter.reason, letter.raw,
                         letter.received),
                    ).rowcount
                    for letter in letters
                )
        finally:
            conn.close()

    def list(self, *, tenant: str | None = None, limit: int = 100) -> Iterator[dict[str, str]]:
        if not self.path.exists():
            return
        conn = self._connect()
        try:
            query = "SELECT tenant, source, origin, reason, raw, received FROM dead_letter"
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
