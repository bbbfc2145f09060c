"""ECS events as columns: what parsers build, then one nested Arrow table in `citysoc.schema.ARROW_SCHEMA`.

A parser fills flat, dotted ECS names with Arrow arrays of one length (`EventColumns`); `to_table` nests
them into the schema's struct columns, leaving every field it was not given null. Values are checked
against the schema's types when they are set, so a wrong type fails in the parser (where one record can be
dead-lettered), never in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from citysoc.schema import ARROW_SCHEMA

TIMESTAMP = pa.timestamp("us", tz="UTC")
INT64_MAX = "9223372036854775807"
# Timestamps a Parquet reader, Spark and Python all represent: years 1 to 9999.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _leaf_types(fields: Iterable[pa.Field], prefix: str = "") -> Iterator[tuple[str, pa.DataType]]:
    for item in fields:
        if pa.types.is_struct(item.type):
            yield from _leaf_types(item.type, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}", item.type


FIELD_TYPES: dict[str, pa.DataType] = dict(_leaf_types(ARROW_SCHEMA))


_NULL_COLUMNS: dict[tuple[int, pa.DataType], pa.Array] = {}


def null_column(length: int, kind: pa.DataType) -> pa.Array:
    """An all-null array, shared (arrays are immutable): a table holds some 170 unfilled leaves of a few types,
    and allocating and zeroing each anew costs more than the few that are filled. Bounded: a few lengths and
    types are kept."""
    key = (length, kind)
    found = _NULL_COLUMNS.get(key)
    if found is None:
        if len(_NULL_COLUMNS) >= 24:
            _NULL_COLUMNS.clear()
        found = _NULL_COLUMNS[key] = pa.nulls(length, kind)
    return found


class EventColumns:
    """Flat ECS name -> Arrow array, every array `length` long; absent names are all null."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._columns: dict[str, pa.Array] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    def get(self, name: str) -> pa.Array | None:
        return self._columns.get(name)

    def __getitem__(self, name: str) -> pa.Array:
        column = self._columns.get(name)
        return column if column is not None else null_column(self.length, FIELD_TYPES[name])

    def __setitem__(self, name: str, values: Any) -> None:
        """Set a field from an Arrow array, a Python sequence, or one value for every row (None clears it)."""
        kind = FIELD_TYPES.get(name)
        if kind is None:
            raise KeyError(f"{name} is not in the event schema")
        if values is None:
            self._columns.pop(name, None)
            return
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            array = values if values.type == kind else values.cast(kind)
        elif isinstance(values, list | tuple):
            array = pa.array(values, type=kind)
        else:
            array = pa.repeat(pa.scalar(values, type=kind), self.length)
        if len(array) != self.length:
            raise ValueError(f"{name}: {len(array)} values for {self.length} events")
        self._columns[name] = array

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        joined = cls(sum(part.length for part in parts))
        for name in dict.fromkeys(name for part in parts for name in part._columns):
            joined._columns[name] = pa.concat_arrays([part[name] for part in parts])
        return joined

    def take(self, indices: pa.Array) -> EventColumns:
        taken = EventColumns(len(indices))
        taken._columns = {name: column.take(indices) for name, column in self._columns.items()}
        return taken

    def replace_rows(self, positions: Sequence[int], other: EventColumns) -> None:
        """Rows `positions` (ascending) become `other`'s rows, every field of either side included."""
        if len(positions) != other.length:
            raise ValueError(f"{len(positions)} positions for {other.length} rows")
        if not positions:
            return
        mapping = list(range(self.length))
        for offset, position in enumerate(positions):
            mapping[position] = self.length + offset
        indices = pa.array(mapping, pa.int64())
        for name in dict.fromkeys([*self._columns, *other._columns]):
            combined = pa.concat_arrays([self[name], other[name]])
            self._columns[name] = combined.take(indices)

    def rows(self) -> list[dict[str, Any]]:
        """Flat dicts, one per row, holding the non-null fields (for the per-record code paths)."""
        values = {name: column.to_pylist() for name, column in self._columns.items()}
        return [{name: column[row] for name, column in values.items() if column[row] is not None}
                for row in range(self.length)]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> EventColumns:
        """Columns from flat dicts (None and absent are null); raises for an unknown field or a wrong type."""
        columns = cls(len(rows))
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        for name in names:
            columns[name] = [row.get(name) for row in rows]
        return columns

    def to_table(self) -> pa.Table:
        """The events as one table in ARROW_SCHEMA (struct columns built directly, fields not set left null)."""
        arrays = [self._build(field, field.name) for field in ARROW_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)

    def _build(self, field: pa.Field, name: str) -> pa.Array:
        if pa.types.is_struct(field.type):
            children = [self._build(child, f"{name}.{child.name}") for child in field.type]
            return pa.StructArray.from_arrays(children, fields=list(field.type))
        return self[name]


_VALUE_ERRORS = (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError)


def columns_from_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[EventColumns, list[int], list[tuple[int, str]]]:
    """Columns from flat dicts built record by record; a row with a value the schema cannot hold is left out
    with the reason (so one odd value costs its record, never the batch). Returns (columns, kept row
    indices, refused (index, reason))."""
    try:
        return EventColumns.from_rows(rows), list(range(len(rows))), []
    except _VALUE_ERRORS:
        pass
    kept: list[int] = []
    refused: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        try:
            EventColumns.from_rows([row])
            kept.append(index)
        except _VALUE_ERRORS as exc:
            refused.append((index, f"a value does not fit the event schema ({type(exc).__name__}: {exc})"))
    return EventColumns.from_rows([rows[index] for index in kept]), kept, refused


def int64_from_text(values: pa.Array) -> pa.Array:
    """ASCII decimal digits as int64; anything else (other scripts' digits such as `²`, signs, more than fits
    in int64) is null, so a record's odd number never stops its batch."""
    if values.null_count == len(values):
        return null_column(len(values), pa.int64())
    decimal, lengths = pc.ascii_is_decimal(values), pc.utf8_length(values)
    if pc.all(decimal).as_py() and pc.max(lengths).as_py() < 19:  # the usual column: every value fits as it is
        return pc.cast(values, pa.int64())
    digits = pc.and_(decimal, pc.less_equal(lengths, 19))  # ^[0-9]{1,19}$
    fits = pc.or_(pc.less(lengths, 19), pc.less_equal(values, pa.scalar(INT64_MAX)))
    usable = pc.and_(digits, fits)
    return pc.cast(pc.if_else(usable, values, pa.scalar(None, pa.string())), pa.int64())


def int64_or_none(text: str | None) -> int | None:
    """The per-record twin of `int64_from_text`."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= 2**63 - 1 else None


def in_time_range(moment: datetime) -> bool:
    return EARLIEST <= moment <= LATEST


def valid_time(values: pa.Array) -> pa.Array:
    """True where a timestamp column holds a time years 1 to 9999 can represent."""
    return pc.and_(pc.greater_equal(values, pa.scalar(EARLIEST, TIMESTAMP)),
                   pc.less_equal(values, pa.scalar(LATEST, TIMESTAMP)))


def table_docs(table: pa.Table) -> list[dict[str, Any]]:
    """Nested ECS documents of a table, holding only the fields that have a value (the shape `ParsedEvent`
    carries)."""
    return [_prune(row) or {} for row in table.to_pylist()]


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {key: pruned for key, item in value.items() if (pruned := _prune(item)) is not None}
        return kept or None
    return value
