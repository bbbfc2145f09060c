"""Data health per source: is a member's data arriving, how much, and how much of it could not be parsed.

The intake writes one line per drained batch (`HealthStore.record`); `soc sources list` and the case API
read it (`HealthStore.health`). Kept in one SQLite file under `$SOC_HOME/health/` with per-minute counts
for the last day, so the last hour can always be shown minute by minute, and the newest event and dead
letter per source. WAL mode lets the API read while the intake writes, from another process.

Rows are keyed by source id *and* tenant, and a read names both: a health line recorded under another
tenant is never shown for a source, whatever happens to source ids.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: Minutes of per-minute counts shown (the last hour) and kept (a day, so a late reader still has its hour).
WINDOW_MINUTES = 60
RETENTION_MINUTES = 24 * 60
_CHUNK = 500  # ids per `IN (...)`: well below SQLite's variable limit

_DDL = (
    """CREATE TABLE IF NOT EXISTS source_minute (
        source_id INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        minute INTEGER NOT NULL,
        events INTEGER NOT NULL,
        dead INTEGER NOT NULL,
        PRIMARY KEY (source_id, tenant, minute)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS source_minute_by_minute ON source_minute (minute)",
    """CREATE TABLE IF NOT EXISTS source_latest (
        source_id INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        last_received TEXT,
        last_event_time TEXT,
        last_dead_at TEXT,
        last_dead_reason TEXT,
        last_dead_origin TEXT,
        PRIMARY KEY (source_id, tenant)
    ) WITHOUT ROWID""",
)

# Newest wins, compared as text: every time is written by `_text`, so text order is time order.
_UPSERT_LATEST = """
INSERT INTO source_latest VALUES (:source_id, :tenant, :received, :event_time, :dead_at, :dead_reason, :dead_origin)
ON CONFLICT (source_id, tenant) DO UPDATE SET
    last_received = CASE WHEN excluded.last_received > coalesce(last_received, '')
                         THEN excluded.last_received ELSE last_received END,
    last_event_time = CASE WHEN excluded.last_event_time > coalesce(last_event_time, '')
                           THEN excluded.last_event_time ELSE last_event_time END,
    last_dead_reason = CASE WHEN excluded.last_dead_at >= coalesce(last_dead_at, '')
                            THEN excluded.last_dead_reason ELSE last_dead_reason END,
    last_dead_origin = CASE WHEN excluded.last_dead_at >= coalesce(last_dead_at, '')
                            THEN excluded.last_dead_origin ELSE last_dead_origin END,
    last_dead_at = CASE WHEN excluded.last_dead_at >= coalesce(last_dead_at, '')
                        THEN excluded.last_dead_at ELSE last_dead_at END
"""
_UPSERT_MINUTE = """
INSERT INTO source_minute VALUES (?, ?, ?, ?, ?)
ON CONFLICT (source_id, tenant, minute) DO UPDATE SET events = events + excluded.events, dead = dead + excluded.dead
"""


@dataclass(frozen=True)
class LastDeadLetter:
    """The newest record of a source that could not be parsed: when, why, and where it came from."""

    at: datetime
    reason: str
    origin: str


@dataclass(frozen=True)
class SourceHealth:
    """One source's data health at `now`.

    `events_per_minute` has one count per minute of the last hour, oldest first, the current minute last.
    `parse_error_rate` is the share of the last hour's records that were dead-lettered (None: nothing came).
    """

    source_id: int
    tenant: str
    now: datetime
    last_event_received: datetime | None
    last_event_time: datetime | None
    events_per_minute: tuple[int, ...]
    dead_letters_last_hour: int
    last_dead_letter: LastDeadLetter | None

    @property
    def events_last_hour(self) -> int:
        return sum(self.events_per_minute)

    @property
    def parse_error_rate(self) -> float | None:
        records = self.events_last_hour + self.dead_letters_last_hour
        return self.dead_letters_last_hour / records if records else None


class HealthStore:
    """Per-source data health in `directory/health.sqlite` (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "health.sqlite"
        self._writers = threading.local()  # one open connection per recording thread (the drainer's)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _DDL:
                conn.execute(statement)
            yield conn
        finally:
            conn.close()

    def _writer(self) -> sqlite3.Connection:
        """This thread's connection for `record`, opened (and the schema made) once: opening one per drained batch
        cost more CPU than the batch's line (and closing the last connection checkpoints the WAL every time)."""
        conn: sqlite3.Connection | None = getattr(self._writers, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _DDL:
                conn.execute(statement)
            self._writers.conn = conn
        return conn

    def record(self, *, source_id: int, tenant: str, events: int, dead: int,
               last_event_time: datetime | None = None, last_dead_reason: str | None = None,
               last_dead_origin: str = "", received: datetime | None = None) -> None:
        """Count one drained batch of a source: `events` stored (or found already stored), `dead` dead-lettered.

        `received` is when the batch's records arrived (default: now); its minute gets the counts.
        `last_event_time` is the newest event time among the batch's events; `last_dead_reason` and
        `last_dead_origin` describe its last dead letter, when it had any.
        """
        if events < 0 or dead < 0:
            raise ValueError("events and dead must not be negative")
        received = received or datetime.now(UTC)
        minute = _minute(received)
        dead_at = _text(received) if dead and last_dead_reason is not None else None
        with self._writer() as conn:
            conn.execute(_UPSERT_MINUTE, (source_id, tenant, minute, events, dead))
            conn.execute(_UPSERT_LATEST, {
                "source_id": source_id, "tenant": tenant,
                "received": _text(received) if events else None,
                "event_time": _text(last_event_time) if events and last_event_time else None,
                "dead_at": dead_at, "dead_reason": last_dead_reason if dead_at else None,
                "dead_origin": last_dead_origin if dead_at else None,
            })
            conn.execute("DELETE FROM source_minute WHERE minute < ?", (minute - RETENTION_MINUTES,))

    def health(self, sources: Collection[tuple[int, str]], *, now: datetime | None = None) -> dict[int, SourceHealth]:
        """Health of each `(source id, tenant)`, by source id; a source with no line yet has empty health.

        Reading never creates the store: an intake that has not run yet simply reports nothing.
        """
        now = now or datetime.now(UTC)
        last = _minute(now)
        first = last - WINDOW_MINUTES + 1
        latest: dict[tuple[int, str], tuple[str | None, ...]] = {}
        minutes: dict[tuple[int, str], dict[int, tuple[int, int]]] = {}
        wanted = sorted(set(sources))
        if wanted and self.path.exists():
            with self._connect() as conn:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start:start + _CHUNK]
                    ids = [source_id for source_id, _ in chunk]
                    marks = ",".join("?" * len(ids))
                    for row in conn.execute(
                            "SELECT source_id, tenant, last_received, last_event_time, last_dead_at, last_dead_reason,"
                            f" last_dead_origin FROM source_latest WHERE source_id IN ({marks})", ids):
                        latest[(row[0], row[1])] = row[2:]
                    for source_id, tenant, minute, events, dead in conn.execute(
                            "SELECT source_id, tenant, minute, events, dead FROM source_minute"
                            f" WHERE minute BETWEEN ? AND ? AND source_id IN ({marks})", [first, last, *ids]):
                        minutes.setdefault((source_id, tenant), {})[minute] = (events, dead)
        return {source_id: _health(source_id, tenant, now, first, latest.get((source_id, tenant)),
                                   minutes.get((source_id, tenant), {}))
                for source_id, tenant in wanted}


def _health(source_id: int, tenant: str, now: datetime, first: int, latest: tuple[str | None, ...] | None,
            minutes: dict[int, tuple[int, int]]) -> SourceHealth:
    received, event_time, dead_at, dead_reason, dead_origin = latest or (None,) * 5
    per_minute = tuple(minutes.get(minute, (0, 0))[0] for minute in range(first, first + WINDOW_MINUTES))
    last_dead = (LastDeadLetter(datetime.fromisoformat(dead_at), dead_reason or "", dead_origin or "")
                 if dead_at else None)
    return SourceHealth(
        source_id=source_id, tenant=tenant, now=now,
        last_event_received=datetime.fromisoformat(received) if received else None,
        last_event_time=datetime.fromisoformat(event_time) if event_time else None,
        events_per_minute=per_minute,
        dead_letters_last_hour=sum(dead for _, dead in minutes.values()),
        last_dead_letter=last_dead,
    )


def _minute(moment: datetime) -> int:
    """Whole minutes since the epoch (UTC); a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 60)


def _text(moment: datetime) -> str:
    """One fixed ISO form in UTC, so that comparing the text compares the times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
