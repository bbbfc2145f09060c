"""File ingest: parse files of one source kind, store events per dataset, dead-letter the rest.

Paths: a file is read whatever its name (gzip is detected by content); a directory is walked
recursively and every regular file in it is read except hidden ones (`.name`), in sorted order, so a
folder of CloudTrail objects or rotated logs (`auth.log`, `auth.log.1`, `auth.log.2.gz`) ingests as it
is. A path that does not exist raises `InputPathError` before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import structlog

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.store import EventStore
from collectors.base import ParserOptions, get_parser
from collectors.errors import InputPathError

log = structlog.get_logger(__name__)


@dataclass
class IngestReport:
    """What one ingest did. `read` counts records that became an event or a dead letter."""

    files: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    stored_by_dataset: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        datasets = ", ".join(f"{name}: {count}" for name, count in sorted(self.stored_by_dataset.items()))
        return (
            f"{self.files} file(s), {self.read} records read: {self.stored} stored"
            + (f" ({datasets})" if datasets else "")
            + f", {self.duplicates} already stored, {self.dead_lettered} dead-lettered"
            + (f", {self.skipped} blank skipped" if self.skipped else "")
        )


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


def ingest_files(
    *,
    tenant: str,
    source: str,
    paths: Sequence[Path],
    store: EventStore,
    dead_letters: DeadLetterStore,
    year: int | None = None,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] | None = None,
    reference: datetime | None = None,
    tz: tzinfo | None = None,
) -> IngestReport:
    """Parse `paths` with the parser of `source`, store the events and dead-letter what cannot be parsed.

    Events are written in batches of `batch_size` per dataset; the store skips ids it already holds,
    so ingesting the same files again stores nothing new. `on_progress` receives the running count of
    records read. `year`, `reference` and `tz` are passed to parsers of year-less timestamps (syslog).
    """
    parser_class = get_parser(source)
    source = parser_class.name  # an alias ingests exactly like the canonical name (same ids, same dead letters)
    options = ParserOptions(year=year, reference=reference, tz=tz or UTC)
    report = IngestReport()
    bound = log.bind(tenant=tenant, source=source)
    for path in expand_paths(paths):
        parser = parser_class(options)
        batches: dict[str, list[dict[str, Any]]] = {}
        letters: list[DeadLetter] = []
        for item in parser.parse(path, tenant=tenant, source=source):
            report.read += 1
            if isinstance(item, DeadLetter):
                letters.append(item)
                if len(letters) >= batch_size:
                    report.dead_lettered += _flush_letters(dead_letters, letters)
            else:
                batch = batches.setdefault(item.dataset, [])
                batch.append(item.doc)
                if len(batch) >= batch_size:
                    _flush_events(store, report, tenant=tenant, dataset=item.dataset, batch=batch)
            if on_progress is not None and report.read % 1000 == 0:
                on_progress(report.read)
        for dataset, batch in batches.items():
            _flush_events(store, report, tenant=tenant, dataset=dataset, batch=batch)
        report.dead_lettered += _flush_letters(dead_letters, letters)
        report.skipped += parser.skipped
        report.files += 1
        bound.debug("ingested file", path=str(path), records_read_so_far=report.read)
    if on_progress is not None:
        on_progress(report.read)
    return report


def _flush_events(store: EventStore, report: IngestReport, *, tenant: str, dataset: str,
                  batch: list[dict[str, Any]]) -> None:
    if not batch:
        return
    result = store.write(tenant=tenant, dataset=dataset, events=batch)
    report.stored += result.stored
    report.duplicates += result.duplicates
    report.stored_by_dataset[dataset] += result.stored
    batch.clear()


def _flush_letters(dead_letters: DeadLetterStore, letters: list[DeadLetter]) -> int:
    """Store the letters; returns how many were handled (new or already known), then empties the list."""
    count = len(letters)
    if letters:
        dead_letters.put(letters)
        letters.clear()
    return count
