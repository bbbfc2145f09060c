"""The parser extension point: a small base class with one hook, and a name -> class registry.

A parser turns a batch of `RawRecord`s into ECS events (`parse_records` -> `ParsedBatch`) and knows how to
read its files as records (`records`). Its one hook, `normalise`, maps the records it is given to event
columns and dead letters; everything around it is shared here and holds for every parser:
- blank records are counted in `skipped`; a record a reader flagged (`RawRecord.problem`) is dead-lettered
  with the reader's reason;
- nothing a record holds makes `parse_records` raise: should `normalise` fail on a batch, the batch is
  halved until the one record that makes it fail is dead-lettered alone, with the error as its reason;
- events without an id of their own get one from `citysoc.ids.event_ids` (tenant, source, resolved time,
  stored content, occurrence); `organization.id` is the tenant and `event.ingested` the record's arrival.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from citysoc.deadletter import DeadLetter
from citysoc.ids import Occurrences, event_ids_of_keys, event_key_prefix, number_occurrences
from collectors import native
from collectors.columns import EventColumns, table_docs, valid_time
from collectors.errors import UnknownParserError, UnparsableRecordError
from collectors.files import DEFAULT_LIMITS, ReadLimits, read_line_blocks, read_lines
from collectors.records import ParsedBatch, RawRecord, RecordBlock, payload_column, received_column, single_received
from collectors.redact import redact_record, redact_text

FILE_BATCH = 20_000
_PROBLEM = attrgetter("problem")
_PAYLOAD = attrgetter("payload")  # records per parse_records call when a parser reads a file itself


class ParsedEvent(NamedTuple):
    """One normalised event: the dataset it belongs to and its nested ECS document."""

    dataset: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class ParserOptions:
    """Settings a parser may need; each parser reads only those that concern it.

    `year` / `reference` fix the year of timestamps that carry none (syslog): without them, a record's own
    arrival time is the reference (a file's modification time, when a file is read). `tz` is the zone of
    timestamps that carry none (UTC when not given). `now` fixes the arrival time of records read from files.
    """

    year: int | None = None
    reference: datetime | None = None
    tz: tzinfo = UTC
    now: datetime | None = field(default=None, compare=False)

    def ingested(self) -> datetime:
        """`event.ingested` of records read from files: the fixed `now` when given, else the current UTC time."""
        return self.now or datetime.now(UTC)


@dataclass
class Normalised:
    """What `normalise` made of a batch: event columns, where column row i is record `rows[i]` of the batch
    (ascending), and the refused records as (index in the batch, dead letter)."""

    columns: EventColumns
    rows: list[int]
    dead: list[tuple[int, DeadLetter]] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Normalised:
        return cls(EventColumns(0), [])


@dataclass
class _Parsed:
    """A batch before it is split by dataset: one table in record order and the letters by record index."""

    table: pa.Table
    rows: list[int]
    dead: list[tuple[int, DeadLetter]]
    skipped: int


class LogParser(ABC):
    """Parses records of one source kind into ECS events."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    datasets: ClassVar[tuple[str, ...]]
    # Text sources: files are read line by line, and events read from a file keep its path in log.file.path.
    line_records: ClassVar[bool] = True

    def __init__(self, options: ParserOptions | None = None, *, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        self.options = options or ParserOptions()
        self.limits = limits
        self.skipped = 0  # blank records left out by `parse`, counted rather than dead-lettered

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The hook is `normalise`; a parser that does all of `parse_records` itself is accepted too (it then
        # owns the guarantees listed in the module docstring).
        if cls.normalise is LogParser.normalise and cls.parse_records is LogParser.parse_records:
            raise TypeError(f"{cls.__name__} must implement normalise (or parse_records)")

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        """The hook: ECS columns for the records it accepts (with `@timestamp` and `event.dataset`; `event.id`
        when the source has ids of its own) and a dead letter for each record it refuses. The records are
        non-blank and carry no reader problem."""
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """How the text of a refused record is redacted before it is kept as a dead letter."""
        return redact_text(text)

    def refuse(self, record: RawRecord, reason: str, *, tenant: str, source: str,
               raw: str | None = None) -> DeadLetter:
        """The dead letter for a record: its redacted text (or `raw`), where it came from, and why."""
        text = raw if raw is not None else self.redact(record.payload.decode("utf-8", errors="replace"))
        problem = record.problem
        return DeadLetter(tenant=tenant, source=source, origin=record.origin, reason=reason, raw=text,
                          received=record.received.isoformat(),
                          raw_size=problem.size if problem else None, raw_sha256=problem.sha256 if problem else None)

    def refuse_item(self, record: RawRecord, origin: str, reason: str, item: Any, *, tenant: str,
                    source: str) -> DeadLetter:
        """The dead letter for one JSON item of a record (one event of a file's array, say): the item as
        redacted JSON, or the whole record's redacted text where the item cannot be written as JSON."""
        try:
            text = orjson.dumps(redact_record(item)).decode()
        except (UnparsableRecordError, orjson.JSONEncodeError):
            text = self.redact(record.payload.decode("utf-8", errors="replace"))
        return replace(self.refuse(record, reason, tenant=tenant, source=source, raw=text), origin=origin,
                       raw_size=None, raw_sha256=None)

    def records(self, path: Path) -> Iterator[RawRecord]:
        """The file's records in bounded memory (gzip transparent); lines, unless the parser reads otherwise."""
        return read_lines(path, received=self.options.ingested(), limits=self.limits)

    def record_chunks(self, path: Path) -> Iterator[Sequence[RawRecord]]:
        """`records(path)` a stretch at a time: for a file of lines, `RecordBlock`s (no object per line); a parser
        that reads its records otherwise gets its own records, one a list (they can be large: the batching
        counts their bytes one by one)."""
        if type(self).records is not LogParser.records:
            yield from ([record] for record in self.records(path))
            return
        yield from read_line_blocks(path, received=self.options.ingested(), limits=self.limits)

    def for_file(self, path: Path) -> LogParser:
        """This parser with the file's modification time as the reference for year-less times (unless given)."""
        if self.options.reference is not None or self.options.year is not None:
            return self
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return type(self)(replace(self.options, reference=modified), limits=self.limits)

    def parse_records(self, records: Sequence[RawRecord], *, tenant: str, source: str,
                      occurrences: Occurrences | None = None, file: Path | None = None) -> ParsedBatch:
        """Every record becomes an event row (in its dataset's table) or a dead letter; never raises for content.

        `occurrences` carries the count of identical records over several calls (a file read in batches);
        by default it covers this call only. `file` is kept in `log.file.path` by text parsers.
        """
        parsed = self._parse(records, tenant=tenant, source=source, occurrences=occurrences, file=file)
        tables: dict[str, pa.Table] = {}
        if parsed.table.num_rows:
            datasets = pc.struct_field(parsed.table.column("event"), "dataset")
            names = pc.unique(datasets).to_pylist()
            for dataset in names:
                tables[dataset] = parsed.table if len(names) == 1 else parsed.table.filter(pc.equal(datasets, dataset))
        return ParsedBatch(tables=tables, dead=[letter for _, letter in sorted(parsed.dead, key=lambda p: p[0])],
                           skipped=parsed.skipped)

    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        """The file API: one `ParsedEvent` or `DeadLetter` per record of the file, in file order."""
        parser = self.for_file(path)
        occurrences = Occurrences()
        for chunk in batched(parser.records(path), FILE_BATCH):
            parsed = parser._parse(chunk, tenant=tenant, source=source, occurrences=occurrences, file=path)
            self.skipped += parsed.skipped
            datasets = pc.struct_field(parsed.table.column("event"), "dataset").to_pylist()
            events = iter(zip(parsed.rows, datasets, table_docs(parsed.table), strict=True))
            letters = iter(sorted(parsed.dead, key=lambda pair: pair[0]))
            yield from _merge_in_order(events, letters)

    # --- shared machinery ----------------------------------------------------------------------------------

    def _parse(self, records: Sequence[RawRecord], *, tenant: str, source: str, occurrences: Occurrences | None,
               file: Path | None) -> _Parsed:
        dead: list[tuple[int, DeadLetter]] = []
        blank: list[int] = []
        if isinstance(records, RecordBlock):  # no read problems; blank payloads found in Arrow
            payloads = records.payloads
            if may_be_blank(payloads):  # the usual block: no empty payload, none starting with a space
                empty = pc.or_(pc.equal(pc.binary_length(payloads), 0),
                               pc.ascii_is_space(payloads.view(pa.string())))
                if pc.any(empty).as_py():
                    blank = pc.indices_nonzero(empty).to_pylist()
        else:
            problems = list(map(_PROBLEM, records))
            if problems.count(None) != len(problems):
                dead = [(index, self.refuse(record, record.problem.reason, tenant=tenant, source=source))
                        for index, record in enumerate(records) if record.problem is not None]
            texts = list(map(_PAYLOAD, records))
            if not all(texts) or any(map(bytes.isspace, texts)):
                blank = [index for index, payload in enumerate(texts) if not payload or payload.isspace()]
        skipped = len(blank)
        if dead or blank:
            left_out = {index for index, _ in dead} | set(blank)
            positions = [index for index in range(len(records)) if index not in left_out]
            usable: Sequence[RawRecord] = [records[index] for index in positions]
        else:  # the usual batch: nothing to leave out (positions are the rows themselves)
            positions, usable = [], records
        normalised = self._guarded(usable, tenant=tenant, source=source)
        dead.extend(normalised.dead if usable is records else
                    [(positions[index], letter) for index, letter in normalised.dead])
        columns = normalised.columns
        rows = normalised.rows if usable is records else [positions[index] for index in normalised.rows]
        self._complete(columns, records if len(rows) == len(records) else [records[row] for row in rows],
                       tenant=tenant, source=source,
                       occurrences=occurrences or Occurrences(), file=file)
        return _Parsed(columns.to_table(), rows, dead, skipped)

    def _guarded(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        """`normalise`, halving the batch around a record it fails on, so that record alone is refused."""
        if not records:
            return Normalised.empty()
        try:
            result = self.normalise(records, tenant=tenant, source=source)
            _check(result)
            return result
        except Exception as exc:  # a parser bug: one record pays for it, never the batch
            if len(records) == 1:
                reason = f"the {self.name} parser failed on this record ({type(exc).__name__}: {exc})"
                return Normalised(EventColumns(0), [], [(0, self.refuse(records[0], reason, tenant=tenant,
                                                                           source=source))])
            middle = len(records) // 2
            first = self._guarded(records[:middle], tenant=tenant, source=source)
            second = self._guarded(records[middle:], tenant=tenant, source=source)
            return Normalised(
                EventColumns.concat([first.columns, second.columns]),
                first.rows + [middle + row for row in second.rows],
                first.dead + [(middle + index, letter) for index, letter in second.dead])

    @staticmethod
    def _event_ids(columns: EventColumns, records: Sequence[RawRecord], *, tenant: str, source: str,
                   occurrences: Occurrences) -> pa.Array:
        """`citysoc.ids.event_ids` over the resolved time and the stored content (`event.original`, else the
        payload), the keys joined by Arrow for the whole batch and hashed in C (`collectors/native/ids.c`)
        when it was built."""
        content = pc.cast(columns["event.original"], pa.binary())
        if content.null_count:
            content = pc.coalesce(content, payload_column(records))
        keys = _compiled_keys(event_key_prefix(tenant, source), columns["@timestamp"], content)
        if keys is None:
            moments = pc.cast(pc.cast(pc.cast(columns["@timestamp"], pa.int64()), pa.string()), pa.binary())
            prefix = event_key_prefix(tenant, source).removesuffix(b"\x1f")  # the join puts the separator back
            keys = pc.binary_join_element_wise(prefix, moments, content, b"\x1f")
        digests = hex_digests(keys)
        if digests is None:
            return pa.array(event_ids_of_keys(keys.to_pylist(), occurrences), pa.string())
        return number_occurrences(*digests, occurrences, any_repeat=_any_repeat)  # digests: compiled ids

    def _complete(self, columns: EventColumns, records: Sequence[RawRecord], *, tenant: str, source: str,
                  occurrences: Occurrences, file: Path | None) -> None:
        """The fields every event gets the same way: tenant, arrival time, id, file path."""
        columns["organization.id"] = tenant
        shared = single_received(records)
        columns["event.ingested"] = shared if shared is not None or not records else received_column(records)
        if file is not None and self.line_records:
            columns["log.file.path"] = str(file)
        ids = columns.get("event.id")
        if (ids is None or ids.null_count > 0) and columns.length:
            made = self._event_ids(columns, records, tenant=tenant, source=source, occurrences=occurrences)
            columns["event.id"] = made if ids is None else pc.coalesce(ids, made)
        occurrences.next_batch()


_ASCII_SPACE = np.zeros(256, np.bool_)  # by byte value
_ASCII_SPACE[list(b" \t\n\v\f\r")] = True


def may_be_blank(payloads: pa.Array) -> bool:
    """False when no payload of a binary array is empty or starts with an ASCII space (a blank one, all spaces,
    does): read with numpy from the offsets and each payload's first byte, no kernel over the bytes."""
    _, offsets, data = payloads.buffers()[:3]
    if offsets is None or data is None or not pa.types.is_binary(payloads.type):
        return True
    ends = np.frombuffer(offsets, np.int32, len(payloads) + 1, payloads.offset * 4)
    starts, stops = ends[:-1], ends[1:]
    if (stops <= starts).any():
        return True
    return bool(_ASCII_SPACE[np.frombuffer(data, np.uint8)[starts]].any())


def hex_digests(keys: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array] | None:
    """`hashlib.blake2b(key, digest_size=16).hexdigest()` of every key of a binary or large_binary array, as
    an Arrow string array, with each digest's first eight bytes as int64 (`citysoc.ids.number_occurrences`),
    computed by the compiled `collectors._ids`; None when it is not built or disabled, or a key is null."""
    compiled = native.load("ids")
    if compiled is None or keys.null_count:
        return None
    if not len(keys):
        return pa.array([], pa.string()), pa.array([], pa.int64())
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    _, offsets, data = keys.buffers()
    positions, hexes, prints = compiled.blake2b128_hex(offsets, data or b"", keys.offset, len(keys),
                                                      pa.types.is_large_binary(keys.type))
    ids = pa.Array.from_buffers(pa.string(), len(keys), [None, pa.py_buffer(positions), pa.py_buffer(hexes)])
    return ids, pa.Array.from_buffers(pa.int64(), len(keys), [None, pa.py_buffer(prints)])


def _compiled_keys(prefix: bytes, moments: pa.Array, content: pa.Array) -> pa.Array | None:
    """The keys `_event_ids` joins in Arrow (prefix, time in µs as decimal text, 0x1f, content) built in one pass
    by `collectors._ids.event_keys` (the casts and the join cost 0.1 µs a line); None without the module, or
    for a null time or content (the Arrow join makes those keys null)."""
    compiled = native.load("ids")
    if compiled is None or moments.null_count or content.null_count or not pa.types.is_binary(content.type):
        return None
    _, offsets, data = content.buffers()
    positions, text = compiled.event_keys(prefix, moments.buffers()[1], moments.offset, offsets, data or b"",
                                          content.offset, len(content))
    return pa.Array.from_buffers(pa.binary(), len(content), [None, pa.py_buffer(positions), pa.py_buffer(text)])


def _any_repeat(fingerprints: pa.Array, known: list[pa.Array]) -> bool:
    """`citysoc.ids.RepeatTest` in C (`collectors._ids.any_repeat`: one hash table for the batch, where Arrow's
    `count_distinct` and `is_in` cost 0.13 µs a line); only called where `hex_digests` found the module."""
    compiled = native.load("ids")
    assert compiled is not None
    runs = tuple((prints.buffers()[1], prints.offset, len(prints)) for prints in (fingerprints, *known))
    return bool(compiled.any_repeat(runs[0], runs[1:]))


def batched(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    """Consecutive lists of `size` records (the last one shorter)."""
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _check(result: Normalised) -> None:
    """What every parser must deliver, checked so a mistake is caught where one record can pay for it."""
    columns = result.columns
    if columns.length != len(result.rows):
        raise ValueError(f"{columns.length} event rows for {len(result.rows)} record indices")
    if not columns.length:
        return
    moments = columns["@timestamp"]
    if moments.null_count or not pc.all(valid_time(moments)).as_py():
        raise ValueError("an event without a usable @timestamp")
    if columns["event.dataset"].null_count:
        raise ValueError("an event without event.dataset")


def _merge_in_order(events: Iterator[tuple[int, str, dict[str, Any]]],
                    letters: Iterator[tuple[int, DeadLetter]]) -> Iterator[ParsedEvent | DeadLetter]:
    event = next(events, None)
    letter = next(letters, None)
    while event is not None or letter is not None:
        if letter is None or (event is not None and event[0] < letter[0]):
            assert event is not None
            yield ParsedEvent(event[1], event[2])
            event = next(events, None)
        else:
            yield letter[1]
            letter = next(letters, None)


_REGISTRY: dict[str, type[LogParser]] = {}


def register_parser(cls: type[LogParser]) -> type[LogParser]:
    """Class decorator: make a parser selectable by its `name` (and aliases) as a `--source`."""
    for key in (cls.name, *cls.aliases):
        _REGISTRY[key] = cls
    return cls


def get_parser(name: str) -> type[LogParser]:
    """The parser class registered under `name`, or an error listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownParserError(name, _REGISTRY) from None


def parser_names() -> list[str]:
    """Every name and alias a parser is registered under."""
    return sorted(_REGISTRY)
