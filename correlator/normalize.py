"""Pre-normalised columns: `lower(<field>)` computed once per row, shared by every rule.

The backend compares case-insensitive strings against these columns with literals lower-cased at
compile time (`CompiledRule.normalized_fields` lists what a rule needs), instead of `lower()` on both
sides per rule per row. A JSON sub-field's column also extracts it once (`get_json_object`).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from correlator.backend import normalized_column, resolve_field


def add_normalized_columns(events: DataFrame, fields: Iterable[str]) -> DataFrame:
    """Add `normalized_column(f) = lower(<f>)` for each ECS field `f` (built-in `lower()`, no UDF)."""
    columns = {}
    for name in sorted(set(fields)):
        source = resolve_field(name)
        if source is None:
            raise ValueError(f"field {name} has no source in the event schema")
        columns[normalized_column(name)] = F.lower(F.expr(source))
    return events.withColumns(columns) if columns else events


def normalized_columns(fields: Iterable[str]) -> list[str]:
    """The column names `add_normalized_columns` adds for `fields` (to drop them afterwards)."""
    return sorted({normalized_column(name) for name in fields})
