"""What every collector passes around: records as they arrived, and what a parser made of a batch of them.

A listener, a file reader and the spool all carry `RawRecord`s: the bytes exactly as a sender sent one
record (a syslog message without its transport framing, one JSON record, one audit line), where it came
from, and when it arrived. A parser turns a batch of them into Arrow tables of ECS events, one per
dataset, and dead letters (`ParsedBatch`).

The live path carries a `RecordBlock` instead: the same records as columns (the payloads one Arrow binary
array, arrival time and origin per run of records), from a listener's read through the spool to the parser,
without a Python object per record. It is a `Sequence[RawRecord]`, so code that indexes or iterates it
still works (making `RawRecord`s); the hot paths ask it for columns (`payload_column`, `received_column`).

A reader that cannot hand a record over whole (a line over the size limit, the cut-off end of a truncated
gzip file, a file that is not JSON at all) still hands it over, with a `ReadProblem`: the parser then
dead-letters it with that reason, so every problem reaches the dead-letter store through one path.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import NamedTuple, overload

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


class RecordRun(NamedTuple):
    """Consecutive records of a block that arrived together: the k-th (from 0) has the origin
    `f"{origin_prefix}{first + k}"` (e.g. `tcp 192.0.2.7:51234 #` and its message number on the connection)."""

    size: int
    received: datetime
    origin_prefix: str
    first: int


_TIMESTAMP = pa.timestamp("us", tz="UTC")


class RecordBlock(Sequence[RawRecord]):
    """Records as columns (see the module doc): `payloads` is a binary array, `runs` say when each stretch of
    records arrived and where from. Immutable. Never carries a `ReadProblem` (a listener hands records it could
    not take whole to the dead letters itself)."""

    __slots__ = ("_ends", "payloads", "runs")

    def __init__(self, payloads: pa.Array, runs: Sequence[RecordRun]) -> None:
        if not pa.types.is_binary(payloads.type):
            raise TypeError("a record block's payloads are an Arrow binary array")
        self.payloads = payloads
        self.runs = tuple(runs)
        self._ends = list(accumulate(run.size for run in self.runs))
        if (self._ends[-1] if self._ends else 0) != len(payloads):
            raise ValueError("the runs of a record block must count its payloads")
        if any(run.received.tzinfo is None for run in self.runs):
            raise ValueError("received must be timezone-aware (UTC)")

    @classmethod
    def of(cls, payloads: Sequence[bytes], *, received: datetime, origin_prefix: str, first: int) -> RecordBlock:
        """One run of records: `payloads` joined into one buffer (one copy)."""
        return cls.run(binary_column(payloads), received=received, origin_prefix=origin_prefix, first=first)

    @classmethod
    def run(cls, payloads: pa.Array, *, received: datetime, origin_prefix: str, first: int) -> RecordBlock:
        """One run of records whose payloads are already a binary array."""
        return cls(payloads, [RecordRun(len(payloads), received, origin_prefix, first)] if len(payloads) else [])

    @classmethod
    def concat(cls, blocks: Sequence[RecordBlock]) -> RecordBlock:
        payloads = pa.concat_arrays([block.payloads for block in blocks]) if blocks else pa.array([], pa.binary())
        return cls(payloads, [run for block in blocks for run in block.runs])

    def __len__(self) -> int:
        return len(self.payloads)

    def cut(self, start: int, stop: int) -> RecordBlock:
        """The records from `start` to `stop` (0 <= start <= stop <= len) as a block over the same buffers."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError("record block cut out of range")
        runs: list[RecordRun] = []
        begin = 0
        for run in self.runs:
            low, high = max(start, begin), min(stop, begin + run.size)
            if low < high:
                runs.append(RecordRun(high - low, run.received, run.origin_prefix, run.first + low - begin))
            begin += run.size
        return RecordBlock(self.payloads.slice(start, stop - start), runs)

    @overload
    def __getitem__(self, index: int) -> RawRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[RawRecord]: ...

    def __getitem__(self, index: int | slice) -> RawRecord | list[RawRecord]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("record block index out of range")
        run_index = bisect_right(self._ends, index)
        run = self.runs[run_index]
        start = self._ends[run_index] - run.size
        return RawRecord(self.payloads[index].as_py(), f"{run.origin_prefix}{run.first + index - start}", run.received)

    def __iter__(self) -> Iterator[RawRecord]:
        start = 0
        for run in self.runs:
            payloads = self.payloads.slice(start, run.size).to_pylist()
            for number, payload in enumerate(payloads, run.first):
                yield RawRecord(payload, f"{run.origin_prefix}{number}", run.received)
            start += run.size

    def single_received(self) -> datetime | None:
        """The arrival time every record shares, or None when they arrived at different times."""
        first = self.runs[0].received if self.runs else None
        return first if all(run.received == first for run in self.runs) else None

    def received_column(self) -> pa.Array:
        micros = array("q")
        for run in self.runs:
            micros.extend(array("q", [_micros(run.received)]) * run.size)
        return pa.Array.from_buffers(pa.int64(), len(micros), [None, pa.py_buffer(micros)]).view(_TIMESTAMP)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def payload_column(records: Sequence[RawRecord]) -> pa.Array:
    """The payloads as one Arrow binary array (a block's own; otherwise copied once)."""
    if isinstance(records, RecordBlock):
        return records.payloads
    return binary_column([record.payload for record in records])


def binary_column(payloads: Sequence[bytes | bytearray]) -> pa.Array:
    """`payloads` as one Arrow binary array (joined into one buffer: one copy)."""
    offsets = array("i", accumulate(map(len, payloads), initial=0))
    data = pa.py_buffer(b"".join(payloads))
    return pa.Array.from_buffers(pa.binary(), len(payloads), [None, pa.py_buffer(offsets), data])


def single_received(records: Sequence[RawRecord]) -> datetime | None:
    """The arrival time every record shares (listeners stamp a read's records with one datetime), or None."""
    if isinstance(records, RecordBlock):
        return records.single_received()
    first = records[0].received if records else None
    return first if all(record.received is first for record in records) else None


def received_column(records: Sequence[RawRecord]) -> pa.Array:
    """Each record's arrival time, as a timestamp array."""
    if isinstance(records, RecordBlock):
        return records.received_column()
    return pa.array([record.received for record in records], _TIMESTAMP)


def latest_received(records: Sequence[RawRecord]) -> datetime | None:
    if isinstance(records, RecordBlock):
        return max((run.received for run in records.runs), default=None)
    return max((record.received for record in records), default=None)


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
