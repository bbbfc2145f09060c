"""Sigma correlation rules (event_count, value_count) as Spark window functions.

Windowing semantics (deterministic for the same input):
1. Base-rule matches are grouped by tenant and the rule's group-by values (a match with a null
   group-by value is not grouped).
2. Every match at time t opens a candidate window [t, t + timespan]; the window qualifies when the
   measure over the matches inside it (event count, or distinct values of the field) satisfies the
   condition.
3. Qualifying windows of one group that start within `timespan` of the previous qualifying start
   form one burst. A burst runs from its first qualifying start to its last qualifying start +
   timespan and raises one alert, whose window start is the first qualifying start.
4. The alert lists the matches inside the burst, in time order (capped), and keeps their count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from correlator.engine.events import ENTITY_COLUMNS
from correlator.model import CompiledRule, CorrelationSpec

MAX_EVENT_IDS = 100
_OPS = {
    "gte": lambda m, n: m >= n, "gt": lambda m, n: m > n, "lte": lambda m, n: m <= n,
    "lt": lambda m, n: m < n, "eq": lambda m, n: m == n, "neq": lambda m, n: m != n,
}


def group_key_column(names: tuple[str, ...], exprs: tuple[str, ...]) -> Column:
    """`source.ip=10.0.0.1` (several fields joined by `,`); null when a group-by value is missing."""
    if not names:
        return F.lit("*")
    parts = [F.concat(F.lit(f"{name}="), F.expr(expr).cast("string")) for name, expr in zip(names, exprs, strict=True)]
    return F.concat_ws(",", *parts) if len(parts) > 1 else parts[0]


def correlation_input(matches: DataFrame, rule: CompiledRule, *, unique_matches: bool = False) -> DataFrame:
    """Narrow rows of the base-rule matches of one correlation: tenant, group key, time, id, entities.

    `unique_matches`: the caller's matches hold each (tenant, event, rule) once, so a correlation with
    one base rule needs no de-duplication (no shuffle).
    """
    spec = _spec(rule)
    selected = matches.filter(F.col("_rule_id").isin(list(spec.rule_ids)))
    columns = [
        F.col("_tenant"), F.col("_event_id"), F.col("_ts_us"), F.col("_dataset"),
        group_key_column(spec.group_by, spec.group_exprs).alias("_group_key"),
        (F.expr(spec.value_expr).cast("string") if spec.value_expr else F.lit(None).cast("string")).alias("_value"),
        *(F.col(column) for column in ENTITY_COLUMNS.values()),
    ]
    narrowed = selected.select(*columns).filter(F.col("_group_key").isNotNull())
    if spec.value_expr:
        narrowed = narrowed.filter(F.col("_value").isNotNull())
    if unique_matches and len(spec.rule_ids) == 1:
        return narrowed
    # An event matched by two base rules (or delivered twice) counts once.
    return narrowed.dropDuplicates(["_tenant", "_dataset", "_event_id"])


def correlation_windows(inputs: DataFrame, rule: CompiledRule, *, max_event_ids: int = MAX_EVENT_IDS,
                        prefilter: bool = True) -> DataFrame:
    """One row per burst: tenant, group key, window start/end and last event (µs), count, event ids, datasets, entities.

    One sort per (tenant, group key) and one aggregation: the window functions score every match
    (step 2 of the module's semantics), mark where a burst starts (step 3), and keep the matches that
    lie inside a burst: a match at t belongs to one exactly when some qualifying start s has
    t - timespan <= s <= t (bursts of a group never overlap, so it is the burst that started last at
    or before t). `tests/correlator/test_correlation.py` checks this against a plain Python reference.
    `prefilter=False` skips `_matches_that_can_qualify` (inputs already few: `near_hot_buckets`).
    """
    spec = _spec(rule)
    span = spec.timespan_seconds * 1_000_000
    if prefilter:
        inputs = _matches_that_can_qualify(inputs, spec)
    ordered = Window.partitionBy("_tenant", "_group_key").orderBy("_ts_us")
    ahead = ordered.rangeBetween(0, span)
    measure = (
        F.count(F.lit(1)).over(ahead) if spec.type == "event_count"
        else F.size(F.collect_set("_value").over(ahead))
    )
    qualifying_start = F.when(F.col("_qualifies"), F.col("_ts_us"))
    previous_start = F.last(qualifying_start, ignorenulls=True).over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    new_burst = F.col("_qualifies") & (previous_start.isNull() | ((F.col("_ts_us") - previous_start) > span))
    members = (
        inputs.withColumn("_qualifies", _OPS[spec.op](measure, F.lit(spec.count)))
        .withColumn("_covering_start", F.max(qualifying_start).over(ordered.rangeBetween(-span, 0)))
        .withColumn("_new_burst", new_burst)
        .withColumn("_burst_start", F.last(F.when(F.col("_new_burst"), F.col("_ts_us")), ignorenulls=True)
                    .over(ordered.rowsBetween(Window.unboundedPreceding, 0)))
        .filter(F.col("_covering_start").isNotNull())
    )
    events = F.sort_array(F.collect_list(F.struct("_ts_us", "_event_id")))
    return (
        members.groupBy("_tenant", "_group_key", "_burst_start")
        .agg(
            (F.max(qualifying_start) + F.lit(span)).alias("_burst_end"),
            F.max("_ts_us").alias("_last_us"),
            F.count(F.lit(1)).alias("_count"),
            F.slice(events, 1, max_event_ids).alias("_events"),
            F.sort_array(F.collect_set("_dataset")).alias("_datasets"),
            *(F.sort_array(F.collect_set(column)).alias(column) for column in ENTITY_COLUMNS.values()),
        )
        .withColumn("_rule_id", F.lit(rule.id))
    )


def _matches_that_can_qualify(inputs: DataFrame, spec: CorrelationSpec) -> DataFrame:
    """For `gte`/`gt`, only the matches that can lie in a qualifying window; the rest skip the sort.

    Time is cut into buckets one timespan wide. A window [s, s + timespan] lies in buckets b and b + 1
    (b = s's bucket), so it can only reach the threshold when those two buckets together hold enough
    matches (for value_count too: n matches hold at most n distinct values). Only matches in such a
    pair of buckets are kept: every match of a qualifying window is kept, so every qualifying start,
    burst and member is unchanged, and a window left with fewer matches could not qualify anyway. One
    hash aggregation instead of sorting every group: a busy sshd's source IPs fail now and then all
    week, rarely ten times in five minutes.
    """
    if spec.op not in ("gte", "gt"):
        return inputs
    needed = _needed(spec)
    span = spec.timespan_seconds * 1_000_000
    keys = ["_tenant", "_group_key"]
    bucketed = inputs.withColumn("_bucket", _bucket_column(span))
    # pair p holds buckets p and p + 1: a match of bucket b counts in the pairs p = b and p = b - 1;
    # the matches of a pair bound its distinct values too (value_count), with one aggregation less
    pairs = (bucketed.select(*keys, F.explode(F.array("_bucket", F.col("_bucket") - 1)).alias("_pair"))
             .groupBy(*keys, "_pair").agg(F.count(F.lit(1)).alias("_bound")).filter(F.col("_bound") >= needed))
    buckets = pairs.select(*keys, F.explode(F.array("_pair", F.col("_pair") + 1)).alias("_bucket")).distinct()
    return bucketed.join(buckets, on=[*keys, "_bucket"], how="left_semi").drop("_bucket")


def _needed(spec: CorrelationSpec) -> int:
    """The least measure a window must reach under `gte`/`gt` (counts are integers)."""
    return spec.count if spec.op == "gte" else spec.count + 1


def _bucket_column(span_us: int) -> Column:
    return F.expr(f"(_ts_us - pmod(_ts_us, {span_us})) div {span_us}")  # floor division, also before 1970


def hot_bucket_probe(inputs: DataFrame, rule: CompiledRule) -> DataFrame | None:
    """For `gte`/`gt`: one row per match to count for `hot_buckets`; None for the other operators.

    Rows (`_half`, `_key`, `_bucket`): `_key` a 64-bit hash of (tenant, group key), `_half` the
    matches a bucket must hold to be hot. A qualifying window lies in two adjacent buckets holding
    together at least the threshold in matches (for value_count too: n matches hold at most n values),
    so one of them holds at least half of it: with no such bucket the correlation raises nothing, and
    otherwise only the matches in or next to one can belong to a qualifying window
    (`near_hot_buckets`). Two longs per match, cheaper to count than `_matches_that_can_qualify`'s
    pairs of string keys (a hash collision only makes more buckets hot).
    """
    spec = _spec(rule)
    if spec.op not in ("gte", "gt"):
        return None
    return inputs.select(F.lit((_needed(spec) + 1) // 2).alias("_half"),
                         F.xxhash64("_tenant", "_group_key").alias("_key"),
                         _bucket_column(spec.timespan_seconds * 1_000_000).alias("_bucket"))


def hot_bucket_bound(rule: CompiledRule, matches: Mapping[str, int]) -> int:
    """At most this many hot buckets (`hot_buckets`) for `rule`, given its base rules' matched events
    (rule id -> count): a hot bucket holds `_half` of them or more, and a rule's buckets are disjoint."""
    spec = _spec(rule)
    return sum(matches.get(rule_id, 0) for rule_id in spec.rule_ids) // max(1, (_needed(spec) + 1) // 2)


def hot_buckets(probes: Mapping[str, DataFrame]) -> DataFrame:
    """(`_rule_id`, `_key`, `_bucket`) of the buckets holding `_half` of their rule's matches or more:
    one aggregation for the probes of every correlation (rule id -> `hot_bucket_probe`).

    The probes are told apart by their position while counting, not by their rule id: with fixed-width
    keys only, Spark aggregates in its fast hash map (a fifth less CPU than with string keys on the
    bench's sshd failures); the ids come back on the few rows that are hot.
    """
    if not probes:
        raise ValueError("hot_buckets needs at least one probe")
    ids = list(probes)
    probed = reduce(DataFrame.unionByName, [probe.select(F.lit(position).alias("_probe"), "_half", "_key", "_bucket")
                                            for position, probe in enumerate(probes.values())])
    return (probed.groupBy("_probe", "_half", "_key", "_bucket").agg(F.count(F.lit(1)).alias("_matches"))
            .filter(F.col("_matches") >= F.col("_half"))
            .select(F.element_at(F.array(*map(F.lit, ids)), F.col("_probe") + 1).alias("_rule_id"), "_key", "_bucket"))


def near_hot_buckets(inputs: DataFrame, rule: CompiledRule, hot: Sequence[tuple[int, int]]) -> DataFrame:
    """`inputs` whose key is one of `hot`'s and whose bucket is in or next to one of `hot`'s buckets.

    That keeps every match in or next to a hot bucket, so every match of every qualifying window; the
    others it keeps change nothing: such a match lies in no qualifying window, and a window starting
    at it spans two buckets that are not hot, so it cannot qualify. Two `IN` sets of longs, no join.
    """
    keys = sorted({key for key, _ in hot})
    buckets = sorted({bucket + step for _, bucket in hot for step in (-1, 0, 1)})
    bucket = _bucket_column(_spec(rule).timespan_seconds * 1_000_000)
    return inputs.filter(F.xxhash64("_tenant", "_group_key").isin(keys) & bucket.isin(buckets))


def _spec(rule: CompiledRule) -> CorrelationSpec:
    if rule.correlation is None:
        raise ValueError(f"rule {rule.id} is not a correlation rule")
    return rule.correlation
