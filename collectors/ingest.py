"""File ingest: stream files of one source kind through the parser into the store, dead-letter the rest.

Each file is read as records (`LogParser.records`: bounded memory whatever its size, gzip transparent),
parsed in batches of at most `batch_size` records or `BATCH_BYTES` bytes (`LogParser.parse_records`),
and its events written per dataset with `EventStore.write_table` once about `WRITE_ROWS` rows or
`WRITE_BYTES` bytes have gathered (few, large Parquet files rather than one per batch). Dead letters are
stored as each batch is parsed. Identical records are counted over the whole file, so two genuinely
repeated lines both stay while a second ingest of the same file stores nothing new.

Paths: a file is read whatever its name (gzip is detected by content); a directory is walked
recursively and every regular file in it is read except hidden ones (`.name`), in sorted order, so a
folder of CloudTrail objects or rotated logs (`auth.log`, `auth.log.1`, `auth.log.2.gz`) ingests as it
is. A path that does not exist raises `InputPathError` before anything is written; a file that cannot be
read (permissions) is one dead letter, and the other files are still read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pyarrow as pa
import structlog

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.ids import Occurrences
from citysoc.store.base import EventStore
from collectors.base import LogParser, ParserOptions, get_parser
from collectors.enrich import GeoEnricher
from collectors.errors import InputPathError
from collectors.files import DEFAULT_LIMITS, ReadLimits
from collectors.records import RawRecord, RecordBlock

log = structlog.get_logger(__name__)

BATCH_BYTES = 8 * 1024 * 1024
WRITE_ROWS = 131_072
WRITE_BYTES = 32 * 1024 * 1024


@dataclass
class IngestReport:
    """What one ingest did. `read` counts records that became an event or a dead letter.

    `all_dead_lettered_files` lists the files that held records and had every one of them dead-lettered
    (a file of the wrong kind, say): `soc ingest` should say so and exit non-zero.
    """

    files: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    stored_by_dataset: Counter[str] = field(default_factory=Counter)
    all_dead_lettered_files: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when some file yielded nothing but dead letters."""
        return bool(self.all_dead_lettered_files)

    def summary(self) -> str:
        datasets = ", ".join(f"{name}: {count}" for name, count in sorted(self.stored_by_dataset.items()))
        text = (
            f"{self.files} file(s), {self.read} records read: {self.stored} stored"
            + (f" ({datasets})" if datasets else "")
            + f", {self.duplicates} already stored, {self.dead_lettered} dead-lettered"
            + (f", {self.skipped} blank skipped" if self.skipped else "")
        )
        if self.all_dead_lettered_files:
            names = ", ".join(str(path) for path in self.all_dead_lettered_files[:5])
            more = f" and {len(self.all_dead_lettered_files) - 5} more" if len(self.all_dead_lettered_files) > 5 else ""
            text += (f"; every record of {len(self.all_dead_lettered_files)} file(s) was dead-lettered ({names}{more}):"
                     " is --source right? `soc deadletter list` shows why")
        return text


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """The files to read: files as given, directories walked recursively (hidden entries left out)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(
                candidate for candidate in path.rglob("*")
                if candidate.is_file()
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            ))
        elif path.is_file():
            files.append(path)
        else:
            raise InputPathError("no such file or directory: check the path (folders are read recursively)",
                                 where=str(path))
    return files


def record_batches(chunks: Iterable[Sequence[RawRecord]], *, size: int,
                   max_bytes: int = BATCH_BYTES) -> Iterator[Sequence[RawRecord]]:
    """Consecutive batches of at most `size` records and about `max_bytes` bytes of payload, from a reader's
    chunks (`LogParser.record_chunks`): a batch of record blocks only is one `RecordBlock`, any other a list."""
    parts: list[Sequence[RawRecord]] = []
    count = held = 0
    for chunk in chunks:
        start = 0
        while start < len(chunk):
            stop = min(len(chunk), start + size - count)
            part = chunk.cut(start, stop) if isinstance(chunk, RecordBlock) else chunk[start:stop]
            parts.append(part)
            count += len(part)
            held += _payload_bytes(part)
            start = stop
            if count >= size or held >= max_bytes:
                yield _joined(parts)
                parts, count, held = [], 0, 0
    if parts:
        yield _joined(parts)


def _payload_bytes(part: Sequence[RawRecord]) -> int:
    if isinstance(part, RecordBlock):
        return int(part.payloads.nbytes)
    return sum(len(record.payload) for record in part)


def _joined(parts: list[Sequence[RawRecord]]) -> Sequence[RawRecord]:
    blocks = [part for part in parts if isinstance(part, RecordBlock)]
    if len(blocks) == len(parts):
        return blocks[0] if len(blocks) == 1 else RecordBlock.concat(blocks)
    return [record for part in parts for record in part]


class _Writer:
    """Gathers a file's tables per dataset and writes them in large pieces."""

    def __init__(self, store: EventStore, report: IngestReport, tenant: str) -> None:
        self.store, self.report, self.tenant = store, report, tenant
        self.pending: dict[str, list[pa.Table]] = {}

    def add(self, dataset: str, table: pa.Table) -> None:
        tables = self.pending.setdefault(dataset, [])
        tables.append(table)
        if sum(t.num_rows for t in tables) >= WRITE_ROWS or sum(t.nbytes for t in tables) >= WRITE_BYTES:
            self.flush(dataset)

    def flush(self, dataset: str | None = None) -> None:
        for name in [dataset] if dataset else list(self.pending):
            tables = self.pending.pop(name, [])
            if not tables:
                continue
            result = self.store.write_table(tenant=self.tenant, dataset=name, table=pa.concat_tables(tables))
            self.report.stored += result.stored
            self.report.duplicates += result.duplicates
            self.report.stored_by_dataset[name] += result.stored


def ingest_files(
    *,
    tenant: str,
    source: str,
    paths: Sequence[Path],
    store: EventStore,
    dead_letters: DeadLetterStore,
    year: int | None = None,
    batch_size: int = 20_000,
    on_progress: Callable[[int], None] | None = None,
    reference: datetime | None = None,
    tz: tzinfo | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    enricher: GeoEnricher | None = None,
) -> IngestReport:
    """Parse `paths` with the parser of `source`, store the events and dead-letter what cannot be parsed.

    The store skips ids it already holds, so ingesting the same files again stores nothing new.
    `on_progress` receives the running count of records read. `year`, `reference` and `tz` are passed to
    parsers of year-less timestamps (syslog; without them a file's modification time is the reference).
    `enricher` adds GeoIP fields to each parsed table before it is stored (`collectors.enrich`).
    """
    parser_class = get_parser(source)
    source = parser_class.name  # an alias ingests exactly like the canonical name (same ids, same dead letters)
    options = ParserOptions(year=year, reference=reference, tz=tz or UTC)
    report = IngestReport()
    bound = log.bind(tenant=tenant, source=source)
    for path in expand_paths(paths):
        events, letters = _ingest_file(parser_class(options, limits=limits), path, tenant=tenant, source=source,
                                       store=store, dead_letters=dead_letters, report=report,
                                       batch_size=batch_size, on_progress=on_progress, enricher=enricher)
        if letters and not events:
            report.all_dead_lettered_files.append(path)
        report.files += 1
        bound.debug("ingested file", path=str(path), events=events, dead_letters=letters)
    if on_progress is not None:
        on_progress(report.read)
    return report


def _ingest_file(parser: LogParser, path: Path, *, tenant: str, source: str, store: EventStore,
                 dead_letters: DeadLetterStore, report: IngestReport, batch_size: int,
                 on_progress: Callable[[int], None] | None, enricher: GeoEnricher | None) -> tuple[int, int]:
    """One file through parser and store; returns (events, dead letters) of the file."""
    writer = _Writer(store, report, tenant)
    occurrences = Occurrences()
    events = letters = 0
    try:
        parser = parser.for_file(path)
        for batch in record_batches(parser.record_chunks(path), size=batch_size):
            parsed = parser.parse_records(batch, tenant=tenant, source=source, occurrences=occurrences, file=path)
            for dataset, table in parsed.tables.items():
                writer.add(dataset, table if enricher is None else enricher.enrich(table))
            if parsed.dead:
                dead_letters.put(parsed.dead)
            events += parsed.events
            letters += len(parsed.dead)
            report.read += parsed.events + len(parsed.dead)
            report.dead_lettered += len(parsed.dead)
            report.skipped += parsed.skipped
            if on_progress is not None:
                on_progress(report.read)
    except OSError as exc:  # unreadable (permissions), or gone while it was read: the other files still are
        dead_letters.put([DeadLetter(tenant=tenant, source=source, origin=str(path),
                                     reason=f"cannot read the file: {exc}", raw="")])
        letters += 1
        report.read += 1
        report.dead_lettered += 1
    writer.flush()
    return events, letters

