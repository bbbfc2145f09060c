"""Documents between the event schema and Elasticsearch: what is written, and rows back from `_source`.

Pure functions over the documented shapes (a bulk response item, a search hit), used by the store
(`citysoc.store.elastic`) and by Spark's reader (`citysoc.store.es_source`); unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from citysoc.schema import JSON_FIELDS, to_row
from citysoc.store import es_layout
from citysoc.store.lookup import to_document

# --- writing ---------------------------------------------------------------------------------------------


def event_document(event: Mapping[str, Any], *, tenant: str, dataset: str) -> dict[str, Any]:
    """The `_source` of one event: the schema's fields only (an unknown field raises, as for the lake), absent
    ones left out, times as ISO 8601; `organization.id` and `event.dataset` filled in where the event has none
    (where it was filed). Raises ValueError for an event without `event.id` or `@timestamp`."""
    row = to_row(event)
    if not isinstance(row["@timestamp"], datetime):
        raise ValueError("every event needs an @timestamp (a timezone-aware datetime)")
    if not row["event"]["id"]:
        raise ValueError("every event needs an event.id")
    row["organization"]["id"] = row["organization"]["id"] or tenant
    row["event"]["dataset"] = row["event"]["dataset"] or dataset
    return to_document(row)


Outcome = Literal["stored", "duplicate", "rejected", "unavailable"]


@dataclass(frozen=True)
class BulkOutcome:
    """What the bulk API did with one document: `stored`; `duplicate` (409: its `_id` is stored, a replay);
    `rejected` (the document itself is wrong: mapping, parsing; goes to the dead letters with `reason`);
    `unavailable` (429 after the retries, 5xx: the cluster could not take it now; the write fails and is retried
    later, never dead-lettered)."""

    outcome: Outcome
    doc_id: str
    index: str
    status: int
    reason: str = ""


def bulk_outcome(ok: bool, item: Mapping[str, Any]) -> BulkOutcome:
    """Classify one `(ok, item)` of `helpers.streaming_bulk` (item: `{"create": {"_index", "_id", "status",
    "error"}}`)."""
    (_, info), = item.items()
    status = int(info.get("status", 0))
    doc_id, index = str(info.get("_id", "")), str(info.get("_index", ""))
    if ok and status < 300:
        return BulkOutcome("stored", doc_id, index, status)
    if status == 409:
        return BulkOutcome("duplicate", doc_id, index, status)
    error = info.get("error")
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, Mapping):
            reason += f" (caused by {caused.get('type', 'error')}: {caused.get('reason', '')})"
    else:
        reason = str(error or info.get("exception", "unknown error"))
    kind: Outcome = "unavailable" if status == 429 or status >= 500 or status == 0 else "rejected"
    return BulkOutcome(kind, doc_id, index, status, f"Elasticsearch refused the document (HTTP {status}): {reason}")


# --- reading ---------------------------------------------------------------------------------------------


def leaves(source: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of a `_source`, whether it nests objects (`{"event": {"id": ..}}`) or uses dotted keys
    (`{"event.id": ..}`, which Elasticsearch accepts as the same field). A JSON field's object is one value."""
    for key, value in source.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in JSON_FIELDS:
            yield from leaves(value, f"{name}.")
        else:
            yield name, value


def parse_time(value: Any) -> datetime | None:
    """An Elasticsearch date as `_source` holds it: ISO 8601 text, or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def _one(value: Any) -> Any:
    """Elasticsearch does not tell a value from an array of one: a scalar field takes the first of an array."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _convert(value: Any, arrow_type: pa.DataType, name: str) -> Any:
    if value is None:
        return None
    if name in JSON_FIELDS:
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    if pa.types.is_list(arrow_type):
        items = value if isinstance(value, list) else [value]
        return [str(item) for item in items if item is not None]
    value = _one(value)
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        return parse_time(value)
    if pa.types.is_integer(arrow_type):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if pa.types.is_boolean(arrow_type):
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(str(value).lower())
    if pa.types.is_string(arrow_type):
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict) else str(value)
    return value


def _fill(fields: Iterable[pa.Field], flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field in fields:
        name = f"{prefix}{field.name}"
        if pa.types.is_struct(field.type):
            row[field.name] = _fill(field.type, flat, f"{name}.")
        else:
            row[field.name] = _convert(flat.get(name), field.type, name)
    return row


def hit_row(hit: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """One search hit as a row of `schema` (the event schema, or the columns a reader kept), with `tenant` and
    `dataset` (where the document was filed: `organization.id` / `event.dataset`, else its data stream)."""
    source = hit.get("_source") or {}
    flat = dict(leaves(source))
    filed = es_layout.split_stream(str(hit.get("_index", ""))) or (None, None)
    extra = {"dataset": _one(flat.get("event.dataset")) or filed[0],
             "tenant": _one(flat.get("organization.id")) or filed[1]}
    row = _fill([field for field in schema if field.name not in extra], flat, "")
    for name in extra:
        if name in schema.names:
            row[name] = extra[name]
    return {name: row[name] for name in schema.names}


def hits_batch(hits: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """A page of hits as one Arrow record batch of `schema` (what a Python data source yields to Spark)."""
    return pa.RecordBatch.from_pylist([hit_row(hit, schema) for hit in hits], schema=schema)


def hit_document(hit: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """A hit as the ECS document `EventStore.events_by_id` returns (the lake's shape: absent fields left out)."""
    row = hit_row(hit, schema)
    row.pop("tenant", None)
    row.pop("dataset", None)
    return to_document(row)
