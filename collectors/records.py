"""What every collector passes around: records as they arrived, and what a parser made of a batch of them.

A listener, a file reader and the spool all carry `RawRecord`s: the bytes exactly as a sender sent one
record (a syslog message without its transport framing, one JSON record, one audit line), where it came
from, and when it arrived. A parser turns a batch of them into Arrow tables of ECS events, one per
dataset, and dead letters (`ParsedBatch`).

A reader that cannot hand a record over whole (a line over the size limit, the cut-off end of a truncated
gzip file, a file that is not JSON at all) still hands it over, with a `ReadProblem`: the parser then
dead-letters it with that reason, so every problem reaches the dead-letter store through one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import pyarrow as pa

from citysoc.deadletter import DeadLetter


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """Why a reader could not hand a record over whole. `size` and `sha256` describe the whole record when
    the payload holds only its beginning (an over-long line), so an operator can still identify it."""

    reason: str
    size: int | None = None
    sha256: str | None = None


class RawRecord(NamedTuple):
    """One record as it arrived.

    `origin` says where, for dead letters and logs: `auth.log:17`, `tcp 192.0.2.7:51234`,
    `relp 192.0.2.7 txnr 42`, `http 192.0.2.7 #5`. `received` is the UTC arrival time (`event.ingested`).
    `problem` is set by a reader that could not read the record whole; such a record is always dead-lettered.

    A named tuple (immutable, like a frozen dataclass) because one is made per line, twice on the live path
    (listener, spool read): it is made in about 60% of a frozen dataclass's time.
    """

    payload: bytes
    origin: str
    received: datetime
    problem: ReadProblem | None = None


@dataclass
class ParsedBatch:
    """What a parser made of a batch of records: events per dataset (`citysoc.schema.ARROW_SCHEMA`), one dead
    letter per refused record (with its reason), and how many blank records it left out on purpose."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0

    @property
    def events(self) -> int:
        return sum(table.num_rows for table in self.tables.values())
