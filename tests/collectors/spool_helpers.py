"""A small real parser for spool and drainer tests, registered as `test.lines`, and record builders.

`b"<epoch seconds> <text>"` becomes a `test.lines` event whose id covers tenant, source, time, text and the
occurrence of an identical record within the call (the id rule of `parse_records`); anything else becomes a
dead letter with its reason; blank records are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from citysoc.deadletter import DeadLetter
from citysoc.ids import stable_id
from citysoc.schema import ARROW_SCHEMA, to_row
from collectors.base import LogParser, ParsedEvent, register_parser
from collectors.records import ParsedBatch, RawRecord

DATASET = "test.lines"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@register_parser
class LineTestParser(LogParser):
    name = "test.lines"
    aliases = ("test.lines-alias",)
    datasets = (DATASET,)

    def records(self, path: Path) -> Iterator[RawRecord]:
        received = datetime.now(UTC)
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                yield RawRecord(line.rstrip(b"\n"), f"{path.name}:{number}", received)

    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        parsed = self.parse_records(list(self.records(path)), tenant=tenant, source=source)
        for table in parsed.tables.values():
            for row in table.to_pylist():
                yield ParsedEvent(DATASET, row)
        yield from parsed.dead

    def parse_records(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> ParsedBatch:
        rows, dead, skipped = [], [], 0
        seen: Counter[bytes] = Counter()
        for record in records:
            if not record.payload.strip():
                skipped += 1
                continue
            stamp, _, text = record.payload.partition(b" ")
            try:
                moment = datetime.fromtimestamp(int(stamp.decode("ascii")), UTC)
                message = text.decode("utf-8")
            except (ValueError, OverflowError, OSError) as error:
                dead.append(DeadLetter(tenant=tenant, source=source, origin=record.origin,
                                       reason=f"not '<epoch seconds> <text>': {error}",
                                       raw=record.payload.decode("utf-8", "backslashreplace"),
                                       received=record.received.isoformat()))
                continue
            occurrence = seen[record.payload]
            seen[record.payload] += 1
            rows.append(to_row({
                "@timestamp": moment, "message": message,
                "organization": {"id": tenant},
                "event": {"id": stable_id(tenant, source, moment.isoformat(), message, str(occurrence)),
                          "dataset": DATASET, "ingested": record.received, "original": message},
            }))
        tables = {DATASET: pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)} if rows else {}
        return ParsedBatch(tables=tables, dead=dead, skipped=skipped)


def line(seconds: int, text: str) -> bytes:
    return f"{int(T0.timestamp()) + seconds} {text}".encode()


def raw(payload: bytes, origin: str = "tcp 192.0.2.7:51234", received: datetime = T0) -> RawRecord:
    return RawRecord(payload=payload, origin=origin, received=received)


def event_id(tenant: str, seconds: int, text: str, *, occurrence: int = 0, source: str = "test.lines") -> str:
    moment = datetime.fromtimestamp(int(T0.timestamp()) + seconds, UTC)
    return stable_id(tenant, source, moment.isoformat(), text, str(occurrence))
