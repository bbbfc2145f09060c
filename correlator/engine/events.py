"""Events as the engine reads them: `prepare_events` adds the columns every later step uses.

`_tenant`, `_event_id`, `_ts_us` (event time in epoch microseconds), `_dataset` and the entity columns
(`ENTITY_COLUMNS`); rows without a tenant, an id or a time, or outside
the window, are dropped.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from citysoc.schema import FIELDS
from correlator.engine.jvm import register_functions
from correlator.model import ENTITY_FIELDS
from correlator.sql import quote_path

# The entity fields as top-level columns (alerts and correlations read them from narrow rows).
ENTITY_COLUMNS: dict[str, str] = {name: "_" + name.replace(".", "_") for name in ENTITY_FIELDS}


def _entity_value(name: str, absent: Collection[str]) -> str:
    """SQL of an entity field as a string (`source.as.number` is a long in the schema); null, unread, when it
    is `absent`."""
    if name in absent:
        return "CAST(NULL AS STRING)"
    return quote_path(name) if FIELDS.get(name, "string") == "string" else f"CAST({quote_path(name)} AS STRING)"


def epoch_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def window_condition(spark: SparkSession, micros: str, since: datetime | None, until: datetime | None, *,
                     functions: bool) -> str:
    """SQL of `since <= micros < until` (either bound may be None: open) for the SQL `micros` of a column of
    epoch microseconds.

    With CitySOC's JVM `functions` the bounds travel in an object that generated code holds by reference
    (`citysoc_in_window`), not as Java literals: a query over the next window is the same code, so a
    service with a moving window neither compiles its plans' classes again every run nor starts the
    JIT's work on them over. Without them, plain comparisons (same rows).
    """
    low = None if since is None else epoch_micros(since)
    high = None if until is None else epoch_micros(until)
    if functions:
        register_functions(spark)
        bounds = ", ".join(f"CAST({'NULL' if bound is None else bound} AS BIGINT)" for bound in (low, high))
        return f"citysoc_in_window({micros}, {bounds})"
    tests = ([] if low is None else [f"{micros} >= {low}L"]) + ([] if high is None else [f"{micros} < {high}L"])
    return " AND ".join(tests) or "TRUE"


def prepare_events(events: DataFrame, *, since: datetime | None = None, until: datetime | None = None,
                   deduplicate: bool = True, columns: Collection[str] | None = None,
                   functions: bool = False, absent: Collection[str] = ()) -> DataFrame:
    """Add `_tenant`, `_event_id`, `_ts_us`, `_dataset` and the entity columns; keep [since, until).

    A store's `tenant` and `dataset` columns stand in where `organization.id` or `event.dataset` is
    missing. `deduplicate` drops at-least-once duplicates (same tenant and `event.id`) here, which
    shuffles whole rows; detection passes False and de-duplicates the (few, narrow) matches instead.
    `columns`: the frame's top-level columns, when the caller knows them (`EventStore.columns`); else
    they are asked of the JVM (the whole nested schema, about 45 ms for ours). `functions`: test the
    window with CitySOC's JVM functions (`window_condition`). `absent`: entity fields no event of the frame
    has (`EventStore.fields_without_values`); their columns are null and the scan does not read them.
    """
    present = frozenset(events.columns if columns is None else columns)
    tenant = "`organization`.`id`"
    if "tenant" in present:
        tenant = f"coalesce({tenant}, CAST(`tenant` AS STRING))"
    dataset = "`event`.`dataset`"
    if "dataset" in present:
        dataset = f"coalesce({dataset}, CAST(`dataset` AS STRING))"
    added = {"_tenant": tenant, "_event_id": "`event`.`id`", "_ts_us": "unix_micros(`@timestamp`)",
             "_dataset": dataset, **{column: _entity_value(name, absent) for name, column in ENTITY_COLUMNS.items()}}
    condition = "_tenant IS NOT NULL AND _event_id IS NOT NULL AND _ts_us IS NOT NULL"
    if since is not None or until is not None:
        condition += " AND " + window_condition(events.sparkSession, "_ts_us", since, until, functions=functions)
    if present & added.keys():
        events = events.drop(*(present & added.keys()))
    # SQL text, one projection and one filter: a Py4J round trip per column, not several per function and name
    prepared = events.selectExpr("*", *(f"{sql} AS `{name}`" for name, sql in added.items())).filter(condition)
    if deduplicate:
        prepared = prepared.dropDuplicates(["_tenant", "_event_id"])
    return prepared
