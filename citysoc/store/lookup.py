"""Reading single events back out of the Parquet lake by id: the evidence behind an alert.

An alert names its events by id and says when they happened, so a lookup reads only the tenant's day folders
its time windows touch. Within a file it reads the `event.id` column first and only the row groups holding a
wanted id in full: evidence pages ask for tens of events out of days of millions, and `event.original` is
the widest column.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: A window touching more days than this lists the tenant's day folders instead of probing each day.
MAX_PROBED_DAYS = 400
#: Times a lookup lists its files again when compaction replaced one under it (see `ParquetEventStore.compact`).
READ_ATTEMPTS = 3


def wanted_days(windows: Collection[tuple[datetime, datetime]]) -> list[tuple[date, date]]:
    """The UTC day ranges (first, last, both included) the `[since, until)` windows touch."""
    ranges = []
    for since, until in windows:
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("windows must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
        if until <= since:
            continue
        first = since.astimezone(UTC).date()
        last = (until.astimezone(UTC) - timedelta(microseconds=1)).date()
        ranges.append((first, last))
    return ranges


def tenant_day_folders(dataset_dir: Path, tenant: str, days: list[tuple[date, date]]) -> list[Path]:
    """The existing `tenant=<tenant>/day=<day>` folders of one dataset folder within the day ranges."""
    tenant_dir = dataset_dir / f"tenant={tenant}"
    if not days or not tenant_dir.is_dir():
        return []
    if sum((last - first).days + 1 for first, last in days) > MAX_PROBED_DAYS:
        found = []
        for folder in sorted(tenant_dir.glob("day=*")):
            day = folder.name.removeprefix("day=")
            if any(first.isoformat() <= day <= last.isoformat() for first, last in days):
                found.append(folder)
        return found
    names = sorted({(first + timedelta(days=offset)).isoformat()
                    for first, last in days for offset in range((last - first).days + 1)})
    return [folder for name in names if (folder := tenant_dir / f"day={name}").is_dir()]


def find_events(files: list[Path], *, tenant: str, ids: Collection[str],
                windows: Collection[tuple[datetime, datetime]] = ()) -> list[dict[str, Any]]:
    """The events of `files` (one tenant's) whose `event.id` is in `ids`, one per id, as ECS documents.

    Row groups whose `@timestamp` range (from the file's statistics) meets none of `windows` are skipped
    unread: a live day is many small files of a few seconds each. A row whose `organization.id` names another
    tenant is never returned, wherever it was filed. Raises FileNotFoundError when a file disappeared while
    being read (compaction replaced it)."""
    wanted = pa.array(sorted(set(ids)), pa.string())
    bounds = [(since.astimezone(UTC), until.astimezone(UTC)) for since, until in windows]
    found: dict[str, dict[str, Any]] = {}
    for path in files:
        for row in _matching_rows(path, wanted, bounds):
            event_id = row["event"]["id"]
            owner = (row.get("organization") or {}).get("id")
            if event_id in found or (owner is not None and owner != tenant):
                continue
            found[event_id] = to_document(row)
        if len(found) == len(wanted):
            break
    return list(found.values())


def _matching_rows(path: Path, wanted: pa.Array, bounds: list[tuple[datetime, datetime]]) -> Iterator[dict[str, Any]]:
    parquet = pq.ParquetFile(path)
    try:
        for group in range(parquet.num_row_groups):
            if bounds and not _may_overlap(parquet.metadata.row_group(group), bounds):
                continue
            ids = pc.struct_field(parquet.read_row_group(group, columns=["event.id"]).column("event"), "id")
            mask = pc.is_in(ids, value_set=wanted)
            if not pc.any(mask).as_py():
                continue
            yield from parquet.read_row_group(group).filter(mask).to_pylist()
    finally:
        parquet.close()


def _may_overlap(group: pq.RowGroupMetaData, bounds: list[tuple[datetime, datetime]]) -> bool:
    """Whether the row group's `@timestamp` statistics leave room for an event in one of the windows (True when
    the file has no usable statistics)."""
    for index in range(group.num_columns):
        column = group.column(index)
        if column.path_in_schema != "@timestamp":
            continue
        stats = column.statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, datetime):
            return True
        first, last = stats.min.astimezone(UTC), stats.max.astimezone(UTC)
        return any(first < until and since <= last for since, until in bounds)
    return True


def to_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as an ECS document: absent fields (null, or a struct with nothing set) left out, times as
    ISO 8601 strings in UTC."""
    document: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            value = to_document(value)
            if not value:
                continue
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        elif value is None:
            continue
        document[key] = value
    return document
