"""Events as the engine reads them: `prepare_events` adds the columns every later step uses.

`_tenant`, `_event_id`, `_ts_us` (event time in epoch microseconds), `_dataset` and the entity columns
(`ENTITY_COLUMNS`); rows without a tenant, an id or a time, or outside
the window, are dropped.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.schema import FIELDS
from correlator.engine.jvm import register_functions
from correlator.model import ENTITY_FIELDS

# The entity fields as top-level columns (alerts and correlations read them from narrow rows).
ENTITY_COLUMNS: dict[str, str] = {name: "_" + name.replace(".", "_") for name in ENTITY_FIELDS}


def _entity_value(name: str, absent: Collection[str]) -> Column:
    """An entity field as a string column (`source.as.number` is a long in the schema); null, unread, when
    it is `absent`."""
    if name in absent:
        return F.lit(None).cast("string")
    return F.col(name) if FIELDS.get(name, "string") == "string" else F.col(name).cast("string")


def epoch_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def window_condition(spark: SparkSession, micros: Column, since: datetime | None, until: datetime | None, *,
                     functions: bool) -> Column:
    """`since <= micros < until` (either bound may be None: open) for a column of epoch microseconds.

    With CitySOC's JVM `functions` the bounds travel in an object that generated code holds by reference
    (`citysoc_in_window`), not as Java literals: a query over the next window is the same code, so a
    service with a moving window neither compiles its plans' classes again every run nor starts the
    JIT's work on them over. Without them, plain comparisons (same rows).
    """
    low = None if since is None else epoch_micros(since)
    high = None if until is None else epoch_micros(until)
    if functions:
        register_functions(spark)
        return F.call_function("citysoc_in_window", micros, *(F.lit(bound).cast("bigint") for bound in (low, high)))
    tests = ([] if low is None else [micros >= F.lit(low)]) + ([] if high is None else [micros < F.lit(high)])
    return reduce(Column.__and__, tests, F.lit(True))


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
    tenant = F.col("organization.id")
    if "tenant" in present:
        tenant = F.coalesce(tenant, F.col("tenant").cast("string"))
    dataset = F.col("event.dataset")
    if "dataset" in present:
        dataset = F.coalesce(dataset, F.col("dataset").cast("string"))
    added = {"_tenant": tenant, "_event_id": F.col("event.id"), "_ts_us": F.unix_micros(F.col("`@timestamp`")),
             "_dataset": dataset, **{column: _entity_value(name, absent) for name, column in ENTITY_COLUMNS.items()}}
    condition = F.col("_tenant").isNotNull() & F.col("_event_id").isNotNull() & F.col("_ts_us").isNotNull()
    if since is not None or until is not None:
        condition = condition & window_condition(events.sparkSession, F.col("_ts_us"), since, until,
                                                 functions=functions)
    prepared = events.withColumns(added).filter(condition)  # one projection, one filter: few plan analyses
    if deduplicate:
        prepared = prepared.dropDuplicates(["_tenant", "_event_id"])
    return prepared
