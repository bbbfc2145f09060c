"""Pre-normalised columns: `lower(<field>)` computed once per row, shared by every rule.

The backend compares case-insensitive strings against these columns with literals lower-cased at
compile time (`CompiledRule.normalized_fields` lists what a rule needs), instead of `lower()` on both
sides per rule per row. A JSON sub-field's column also extracts it once (`get_json_object`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from correlator.backend import normalized_column, resolve_field

if TYPE_CHECKING:
    from correlator.compiler import CompiledRule


def add_normalized_columns(events: DataFrame, fields: Iterable[str]) -> DataFrame:
    """Add `normalized_column(f) = lower(<f>)` for each ECS field `f` (built-in `lower()`, no UDF)."""
    columns = {normalized_column(name): F.lower(F.expr(source_sql(name))) for name in sorted(set(fields))}
    return events.withColumns(columns) if columns else events


def normalized_columns(fields: Iterable[str]) -> list[str]:
    """The column names `add_normalized_columns` adds for `fields` (to drop them afterwards)."""
    return sorted({normalized_column(name) for name in fields})


def source_sql(name: str) -> str:
    """Spark SQL reading the field itself (`resolve_field`); ValueError when the schema has none."""
    source = resolve_field(name)
    if source is None:
        raise ValueError(f"field {name} has no source in the event schema")
    return source


def routed_only_fields(rules: Sequence[CompiledRule], shared: Iterable[str] = (), *,
                       folded: bool = False) -> frozenset[str]:
    """Normalised fields that only routed rules read, and that are not in `shared` (route keys).

    A column is computed for every event its chunk's prefilter lets through; `lower()` of a field read
    by a few rules routed on rare values (a CloudTrail `requestParameters` document) costs more there
    than inside those rules, which run only for the events routed to them (`inline_normalized`).
    With `folded` (the routed rules' `contains` tests read the field itself, `literal_index.fold_contains`),
    every field the routed rules read is left to them, unrouted rules reading it too or not: each chunk
    is its own projection, so a routed chunk would otherwise lower it for every event it lets through,
    and its few remaining tests (`=`, `LIKE` behind a guard) run only where the route and guards pass.
    """
    unrouted = {name for rule in rules if rule.routing is None for name in rule.normalized_fields}
    routed = {name for rule in rules if rule.routing is not None for name in rule.normalized_fields}
    return frozenset(routed - set(shared) - (set() if folded else unrouted))


def inline_normalized(rule: CompiledRule, fields: Iterable[str]) -> CompiledRule:
    """The rule reading `lower(<field>)` itself instead of the shared column, for each of `fields`."""
    expression = rule.expression
    for name in sorted(set(fields) & rule.normalized_fields):
        expression = expression.replace(f"`{normalized_column(name)}`", f"lower({source_sql(name)})")
    return rule if expression == rule.expression else replace(rule, expression=expression)
