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
import pyarrow.compute as pc

from citysoc.schema import ARROW_SCHEMA, JSON_FIELDS, to_row
from citysoc.store import es_layout
from citysoc.store.lookup import to_document

# --- writing ---------------------------------------------------------------------------------------------


def event_document(event: Mapping[str, Any], *, tenant: str, dataset: str) -> dict[str, Any]:
    """The `_source` of one event: the schema's fields only (an unknown field raises, as for the lake), absent
    ones left out, times as ISO 8601; `organization.id` and `event.dataset` filled in where the event has none
    (where it was filed). Raises ValueError for an event without `event.id` or `@timestamp`."""
    return table_documents(events_table([event]), tenant=tenant, dataset=dataset)[0]


def events_table(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Events as an Arrow table of the event schema (`to_row`: an unknown field raises)."""
    rows = [to_row(event) for event in events]
    for row in rows:
        if row["@timestamp"] is not None and not isinstance(row["@timestamp"], datetime):
            raise ValueError("@timestamp must be a timezone-aware datetime")
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def table_documents(table: pa.Table, *, tenant: str, dataset: str) -> list[dict[str, Any]]:
    """The `_source` of every row of an Arrow table of events (`ARROW_SCHEMA`), as `event_document` makes it.

    Column by column: only the fields some row of the table sets are visited for every row (a batch of one
    source sets a dozen of the schema's ~180 leaves), and times are formatted by Arrow."""
    table = table.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
    flat = table
    while any(pa.types.is_struct(item.type) for item in flat.schema):
        flat = flat.flatten()
    rows = table.num_rows
    if flat.column("event.id").null_count:
        raise ValueError("every event needs an event.id")
    if flat.column("@timestamp").null_count:
        raise ValueError("every event needs an @timestamp (a timezone-aware datetime)")
    columns: list[tuple[tuple[str, ...], list[Any]]] = []
    for name, column in zip(flat.column_names, flat.columns, strict=True):
        if column.null_count == rows:
            continue
        if pa.types.is_timestamp(column.type):  # UTC, microseconds: 2026-12-01T09:30:15.123456Z
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        path = (name,) if name == "@timestamp" else tuple(name.split("."))
        columns.append((path, column.to_pylist()))
    documents = []
    for index in range(rows):
        document: dict[str, Any] = {}
        for path, values in columns:
            value = values[index]
            if value is None:
                continue
            node = document
            for part in path[:-1]:
                node = node.get(part) or node.setdefault(part, {})
            node[path[-1]] = value
        document.setdefault("organization", {}).setdefault("id", tenant)
        document["event"].setdefault("dataset", dataset)
        documents.append(document)
    return documents


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


def _leaves_of(fields: Iterable[pa.Field], prefix: str = "") -> Iterator[str]:
    for item in fields:
        name = f"{prefix}{item.name}"
        if pa.types.is_struct(item.type):
            yield from _leaves_of(item.type, f"{name}.")
        else:
            yield name


def hits_batch(hits: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """A page of hits as one Arrow record batch of `schema` (the event schema plus `tenant` and `dataset`, or
    the columns a reader kept): what a Python data source yields to Spark. `tenant` and `dataset` are where
    each document was filed: `organization.id` / `event.dataset`, else its data stream. Built column by column:
    each hit costs the fields its `_source` has, not the schema's ~180."""
    count = len(hits)
    wanted = set(_leaves_of(schema))
    present: dict[str, list[Any]] = {}
    filed: dict[str, list[Any]] = {"tenant": [None] * count, "dataset": [None] * count}
    for index, hit in enumerate(hits):
        flat = dict(leaves(hit.get("_source") or {}))
        for name, value in flat.items():
            if name in wanted:
                column = present.get(name)
                if column is None:
                    column = present[name] = [None] * count
                column[index] = value
        stream = es_layout.split_stream(str(hit.get("_index", ""))) or (None, None)
        filed["dataset"][index] = _one(flat.get("event.dataset")) or stream[0]
        filed["tenant"][index] = _one(flat.get("organization.id")) or stream[1]

    def array(item: pa.Field, prefix: str) -> pa.Array:
        name = f"{prefix}{item.name}"
        if pa.types.is_struct(item.type):
            children = [array(child, f"{name}.") for child in item.type]
            return pa.StructArray.from_arrays(children, fields=list(item.type))
        if not prefix and name in filed:
            return pa.array(filed[name], item.type)
        values = present.get(name)
        if values is None:
            return pa.nulls(count, item.type)
        return pa.array([_convert(value, item.type, name) for value in values], item.type)

    return pa.RecordBatch.from_arrays([array(item, "") for item in schema], schema=schema)


def hit_row(hit: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """One search hit as a row of `schema` (see `hits_batch`)."""
    row: dict[str, Any] = hits_batch([hit], schema).to_pylist()[0]
    return row


def hit_document(hit: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """A hit as the ECS document `EventStore.events_by_id` returns (the lake's shape: absent fields left out)."""
    row = hit_row(hit, schema)
    row.pop("tenant", None)
    row.pop("dataset", None)
    return to_document(row)
