"""The drainer: spooled batches -> the source's parser -> the event store and the dead letters -> spool commit.

Exactly once into the store: a pass commits the spool only after every event of the pass is stored, and a
pass replayed after a crash stores nothing twice, because the store skips ids it holds and the parser gives
a replayed batch the same ids. For that the grouping must replay too: a pass takes the pending batches from
the committed position up to `max_records` and parses, per (tenant, source), their records in spool order
in one `parse_records` call. A replay starts at the same position and sees the same batches first (the spool
only grows at its end), so each record keeps its occurrence number among identical records of the call.

Between passes, when the spool is idle, the drainer compacts the store's small files (every `compact_every`
seconds; a stream of small batches otherwise leaves thousands of files a reader must open).

A record never stops the drain: what the parser refuses is dead-lettered with its reason; a batch whose
source names no parser, or whose parser raises (a parser bug), is dead-lettered record by record, the
parser retried on each record alone so that one bad record takes only itself. A store that cannot write
(disk full, permissions) stops the pass before the commit: `run` logs it and retries, nothing is skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast, runtime_checkable

import pyarrow as pa
import structlog

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.store import EventStore, WriteResult
from collectors.base import ParserOptions, get_parser
from collectors.enrich import GeoEnricher
from collectors.errors import UnknownParserError
from collectors.records import ParsedBatch, RawRecord, RecordBlock
from collectors.spool import Spool, SpoolBatch

log = structlog.get_logger(__name__)

DEAD_RAW_CHARS = 64 * 1024  # a dead letter keeps this much of a record the drainer could not hand to a parser
_MAX_BACKOFF_SECONDS = 30.0

StoredCallback = Callable[[SpoolBatch, ParsedBatch, WriteResult], None]


@runtime_checkable
class RecordParser(Protocol):
    """What the drainer needs of a `collectors.base.LogParser`."""

    def parse_records(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> ParsedBatch: ...


class Drainer:
    """Moves what the spool holds into the event store; one drainer per spool."""

    def __init__(self, spool: Spool, store: EventStore, dead_letters: DeadLetterStore, *,
                 on_stored: StoredCallback | None = None, options: ParserOptions | None = None,
                 compact_every: float | None = None, compact_min_files: int = 8,
                 enricher: GeoEnricher | None = None) -> None:
        self.spool = spool
        self.store = store
        self.dead_letters = dead_letters
        self.on_stored = on_stored
        self.options = options or ParserOptions()
        self.compact_every = compact_every  # None: never (the store is compacted elsewhere)
        self.compact_min_files = compact_min_files
        self.enricher = enricher  # GeoIP fields added to each parsed table before it is stored
        self._compacted_at = time.monotonic()

    def run_once(self, *, max_records: int = 50_000) -> int:
        """Drain what is pending now, up to about `max_records` records (whole batches, at least one); returns the
        records handled (stored, duplicates, dead-lettered or skipped), 0 when nothing was pending.

        `on_stored` is called after the commit, once per (tenant, source) of the pass, with a `SpoolBatch` of
        that group's records (its position the group's last), what the parser made of them, and what the
        store did."""
        window: list[SpoolBatch] = []
        records = 0
        batches = self.spool.pending()
        try:
            for batch in batches:
                window.append(batch)
                records += len(batch.records)
                if records >= max_records:
                    break
        finally:
            batches.close()
        if not window:
            return 0
        groups: dict[tuple[str, str, int | None], list[SpoolBatch]] = {}
        for batch in window:
            groups.setdefault((batch.tenant, batch.source, batch.source_id), []).append(batch)
        outcomes = [self._store_group(group) for group in groups.values()]
        self.spool.commit(window[-1].position)  # only now: every event of the window is stored
        if self.on_stored is not None:
            for outcome in outcomes:
                self.on_stored(*outcome)
        return records

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.2) -> None:
        """Drain until `stop` is set, then drain what is still pending and return (stop the listeners first).
        A failing pass is logged and retried with a growing pause; nothing is committed past what is stored."""
        pause = idle_seconds
        while True:
            stopping = stop.is_set()
            try:
                handled = self.run_once()
            except Exception:
                log.exception("drain pass failed; the spool keeps the records and the pass is retried",
                              spool=str(self.spool.directory), retry_in_seconds=pause)
                if stopping:
                    return
                stop.wait(pause)
                pause = min(pause * 2, _MAX_BACKOFF_SECONDS)
                continue
            pause = idle_seconds
            if handled == 0:
                if stopping:
                    return
                self.compact_if_due()
                stop.wait(idle_seconds)

    def compact_if_due(self) -> int:
        """Compact the store when `compact_every` seconds have passed since the last compaction; returns the files
        merged away. A failing compaction is logged and tried again at the next due time: it never stops the
        drain (the store keeps the old files or the merged one, never neither)."""
        if self.compact_every is None or time.monotonic() - self._compacted_at < self.compact_every:
            return 0
        self._compacted_at = time.monotonic()
        try:
            merged = self.store.compact(min_files=self.compact_min_files)
        except Exception:
            log.exception("store compaction failed; retried at the next due time", retry_in_seconds=self.compact_every)
            return 0
        if merged:
            log.info("store compacted", files_merged=merged)
        return merged

    def _store_group(self, group: list[SpoolBatch]) -> tuple[SpoolBatch, ParsedBatch, WriteResult]:
        tenant, source = group[0].tenant, group[0].source
        records = _joined([batch.records for batch in group])
        parsed, source = self._parse(records, tenant=tenant, source=source)
        if parsed.dead:
            self.dead_letters.put(parsed.dead)  # ids are deterministic: a replay adds none twice
        result = WriteResult(stored=0, duplicates=0)
        for dataset, table in parsed.tables.items():
            if table.num_rows:
                if self.enricher is not None:
                    table = self.enricher.enrich(table)
                result += self.store.write_table(tenant=tenant, dataset=dataset, table=table)
        return SpoolBatch(tenant, source, records, group[-1].position, group[0].source_id), parsed, result

    def _parse(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> tuple[ParsedBatch, str]:
        """What the source's parser made of the records, and the source's canonical name."""
        try:
            parser_class = get_parser(source)
        except UnknownParserError as error:
            return ParsedBatch(dead=[_dead(record, tenant=tenant, source=source, reason=error.reason)
                                     for record in records]), source
        source = parser_class.name  # an alias drains exactly like the canonical name (same ids)
        parser = parser_class(self.options)
        if not isinstance(parser, RecordParser):
            reason = f"parser {source!r} cannot parse spooled records (it has no parse_records)"
            return ParsedBatch(dead=[_dead(record, tenant=tenant, source=source, reason=reason)
                                     for record in records]), source
        try:
            return parser.parse_records(records, tenant=tenant, source=source), source
        except Exception as error:
            log.error("parser raised on a batch; parsing its records one by one", tenant=tenant, source=source,
                      error=repr(error))
        return _parse_one_by_one(parser, records, tenant=tenant, source=source), source


def _joined(parts: list[Sequence[RawRecord]]) -> Sequence[RawRecord]:
    """One sequence of the group's records: blocks stay columns (one concatenation), anything else a tuple."""
    if all(isinstance(part, RecordBlock) for part in parts):
        return parts[0] if len(parts) == 1 else RecordBlock.concat(cast(list[RecordBlock], parts))
    return tuple(record for part in parts for record in part)


def _parse_one_by_one(parser: RecordParser, records: Sequence[RawRecord], *, tenant: str,
                      source: str) -> ParsedBatch:
    tables: dict[str, list[pa.Table]] = {}
    merged = ParsedBatch()
    for record in records:
        try:
            parsed = parser.parse_records([record], tenant=tenant, source=source)
        except Exception as error:
            merged.dead.append(_dead(record, tenant=tenant, source=source,
                                     reason=f"parser {source!r} failed on this record: {error!r}"))
            continue
        for dataset, table in parsed.tables.items():
            tables.setdefault(dataset, []).append(table)
        merged.dead.extend(parsed.dead)
        merged.skipped += parsed.skipped
    merged.tables = {dataset: pa.concat_tables(parts) for dataset, parts in tables.items()}
    return merged


def _dead(record: RawRecord, *, tenant: str, source: str, reason: str) -> DeadLetter:
    raw = record.payload.decode("utf-8", "backslashreplace")
    if len(raw) > DEAD_RAW_CHARS:
        raw = f"{raw[:DEAD_RAW_CHARS]}... [{len(record.payload):,} bytes, cut]"
    return DeadLetter(tenant=tenant, source=source, origin=record.origin, reason=reason, raw=raw,
                      received=record.received.isoformat())
