"""Sigma correlation rules (all seven types of the specification, chained) as Spark window functions.

Windowing semantics (deterministic for the same input):
1. Matches of the referenced rules are grouped by tenant and the rule's group-by values (read through
   `aliases` per referenced rule; a match with a null group-by value is not grouped). A referenced
   correlation rule contributes one match per alert it raises, at the moment its condition was first
   met in that burst (the first match whose trailing window [t - timespan, t] qualifies; else the
   burst's last match).
2. Every match at time t opens a candidate window [t, t + timespan]; the window qualifies when the
   measure over the matches inside it satisfies the condition. Measures: event_count the matches;
   value_count the distinct values of the field; value_sum / value_avg / value_percentile /
   value_median the sum, mean, or linearly interpolated percentile of the field's numeric values
   (matches without a number are left out); temporal the number of distinct referenced rules matched;
   temporal_ordered the length of the longest chain of referenced rules matched in the rule's order at
   strictly increasing times (the default condition, `gte` the number of rules, asks for all of them,
   in order).
3. Qualifying windows of one group that start within `timespan` of the previous qualifying start
   form one burst. A burst runs from its first qualifying start to its last qualifying start +
   timespan and raises one alert, whose window start is the first qualifying start.
4. The alert lists the matches inside the burst, in time order (capped), and keeps their count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from correlator.engine.events import ENTITY_COLUMNS
from correlator.engine.unions import union_all
from correlator.model import CompiledRule, CorrelationSpec
from correlator.sql import in_list_sql, sql_string

MAX_EVENT_IDS = 100
_OPS = {
    "gte": lambda m, n: m >= n, "gt": lambda m, n: m > n, "lte": lambda m, n: m <= n,
    "lt": lambda m, n: m < n, "eq": lambda m, n: m == n, "neq": lambda m, n: m != n,
}
# Types whose measure never exceeds the number of matches in the window (what the bucket filters rely on).
BOUNDED_BY_MATCHES = frozenset({"event_count", "value_count", "temporal", "temporal_ordered"})
NUMERIC_TYPES = frozenset({"value_sum", "value_avg", "value_percentile", "value_median"})
# Types that count an event once per referenced rule it matched (the others once).
PER_RULE_TYPES = frozenset({"temporal", "temporal_ordered"})
_ALERT_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"  # `alerts.iso_from_micros` (the session is UTC)


# The entity columns of correlation inputs (arrays of the match's values) and of bursts (their sorted union),
# each as SQL text: one Py4J call a column instead of one per function (a correlation plan has 13 of each).
def _entity_arrays() -> list[str]:
    return [f"array_compact(array(`{column}`)) AS `{column}`" for column in ENTITY_COLUMNS.values()]


def _entity_unions() -> list[Column]:
    return [F.expr(f"array_sort(array_distinct(flatten(collect_set(`{column}`)))) AS `{column}`")
            for column in ENTITY_COLUMNS.values()]


def group_key_sql(group_by: Sequence[tuple[str, str]]) -> str:
    """SQL of `source.ip=10.0.0.1` (several fields joined by `,`) for (name, SQL) pairs; null when a group-by
    value is missing."""
    return _key_sql([name for name, _ in group_by], [f"CAST({expr} AS STRING)" for _, expr in group_by])


def _key_sql(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return "'*'"
    parts: list[str] = []
    for index, (name, value) in enumerate(zip(names, values, strict=True)):
        parts += [sql_string(("," if index else "") + f"{name}="), value]
    return f"concat({', '.join(parts)})"  # null as soon as one value is


def _by_rule(rule_ids: Sequence[str], sql: Callable[[str], str]) -> str:
    """SQL of `sql(rule id)` for the referenced rule a match row belongs to."""
    if len(rule_ids) == 1:
        return sql(rule_ids[0])
    return "CASE " + " ".join(f"WHEN `_rule_id` = {sql_string(rule_id)} THEN {sql(rule_id)}"
                              for rule_id in rule_ids) + " END"


def _numeric(value: Column) -> Column:
    """A finite number, or null (text that is no number, NaN and infinities never count)."""
    number = value.try_cast("double")
    return F.when(~F.isnan(number) & (F.abs(number) < F.lit(float("inf"))), number)


def _slot(spec: CorrelationSpec) -> str:
    """SQL of the position of the match's referenced rule in the rule's list (temporal types)."""
    return f"CAST(array_position(array({', '.join(map(sql_string, spec.rule_ids))}), `_rule_id`) - 1 AS INT)"


def correlation_input(matches: DataFrame, rule: CompiledRule, *, unique_matches: bool = False) -> DataFrame:
    """Narrow rows of the referenced detection rules' matches of one correlation: tenant, id, time,
    dataset, group key and values, value, referenced rule and its position, entities (as arrays).

    `unique_matches`: the caller's matches hold each (tenant, event, rule) once, so a correlation with
    one base rule needs no de-duplication (no shuffle). Spelt as SQL text (a Py4J round trip a column).
    """
    spec = _spec(rule)
    base = list(spec.base_rule_ids)
    selected = matches.filter(in_list_sql("`_rule_id`", base)) if base else matches.limit(0)

    def group_values(rule_id: str) -> str:
        return "array(" + ", ".join(f"CAST({expr} AS STRING)" for expr in spec.fields_for(rule_id)[0]) + ")"

    def value(rule_id: str) -> str:
        expr = spec.fields_for(rule_id)[1]
        return f"CAST({expr} AS STRING)" if expr else "CAST(NULL AS STRING)"

    if base:
        values = _by_rule(base, group_values)
        measured = _by_rule(base, value)
    else:  # only chained references: no rows, same columns
        values = f"array_repeat(CAST(NULL AS STRING), {len(spec.group_by)})"
        measured = "CAST(NULL AS STRING)"
    narrowed = _keyed(selected.selectExpr("`_tenant`", "`_event_id`", "`_ts_us`", "`_dataset`",
                                          f"{values} AS `_group_values`", f"{measured} AS `_value`", "`_rule_id`",
                                          *_entity_arrays()), spec)
    if unique_matches and len(base) <= 1:
        return narrowed
    # An event matched by two referenced rules (or delivered twice) counts once; per rule for the
    # temporal types, which ask which rules matched.
    keys = ["_tenant", "_dataset", "_event_id", *(["_rule_id"] if spec.type in PER_RULE_TYPES else [])]
    return narrowed.dropDuplicates(keys)


def _keyed(rows: DataFrame, spec: CorrelationSpec) -> DataFrame:
    """`rows` with `_group_key`, `_slot` (and only the matches the correlation can measure)."""
    names = spec.group_by
    key = _key_sql(names, [f"element_at(`_group_values`, {index + 1})" for index in range(len(names))])
    columns = {"_group_key": F.expr(key), "_slot": F.expr(_slot(spec))}
    measurable = "`_group_key` IS NOT NULL"
    if spec.type in NUMERIC_TYPES:
        columns["_value"] = _numeric(F.col("_value"))
    if spec.type in NUMERIC_TYPES or spec.value_field:
        measurable += " AND `_value` IS NOT NULL"
    # one projection and one filter: each DataFrame call is a Py4J round trip and an analysis of the plan
    return rows.withColumns(columns).filter(measurable)


def chained_input(bursts: DataFrame, child: CompiledRule, parent: CompiledRule) -> DataFrame:
    """The alerts of `child` (rows of `correlation_windows`) as matches of `parent`, which references it.

    One row per alert, at the moment its condition was met (`correlation_windows(moments=True)`), with
    the alert's id as event id (what the parent's alert lists) and the child's group values moved to the
    parent's group-by positions.
    """
    reference = _spec(parent).chain_for(child.id)
    if reference is None:
        raise ValueError(f"rule {parent.id} does not reference {child.id}")
    start = F.date_format(F.timestamp_micros("_burst_start"), _ALERT_TIME_FORMAT)
    alert_id = F.substring(F.sha2(F.concat_ws("\x1f", F.lit("correlation"), F.col("_tenant"), F.lit(child.id),
                                              F.col("_group_key"), start), 256), 1, 32)
    values = F.array(*(F.element_at("_group_values", position + 1) for position in reference.group_positions))
    value = (F.element_at("_group_values", reference.value_position + 1) if reference.value_position is not None
             else F.lit(None).cast("string"))
    rows = bursts.select(
        F.col("_tenant"), alert_id.alias("_event_id"), F.col("_moment_us").alias("_ts_us"),
        F.array_join("_datasets", ",").alias("_dataset"), values.alias("_group_values"), value.alias("_value"),
        F.lit(child.id).alias("_rule_id"), *(F.col(column) for column in ENTITY_COLUMNS.values()),
    )
    return _keyed(rows, _spec(parent))


def _measure(spec: CorrelationSpec, ahead: WindowSpec) -> Column:
    """The correlation's measure over the window frame `ahead` (step 2 of the module's semantics)."""
    if spec.type == "event_count":
        return F.count(F.lit(1)).over(ahead)
    if spec.type == "value_count":
        return F.size(F.collect_set("_value").over(ahead))
    if spec.type == "value_sum":
        return F.sum("_value").over(ahead)
    if spec.type == "value_avg":
        return F.avg("_value").over(ahead)
    if spec.type in ("value_percentile", "value_median"):
        return F.percentile(F.col("_value"), F.lit((spec.percentile if spec.percentile is not None else 50) / 100))\
            .over(ahead)
    if spec.type == "temporal":
        return F.size(F.collect_set("_slot").over(ahead))
    if spec.type == "temporal_ordered":
        # slots in time order, a later rule first among equal times (so equal times never chain); the
        # longest strictly increasing run of slots is the longest chain in the rule's order
        moments = F.array_sort(F.collect_list(F.struct(F.col("_ts_us"), (-F.col("_slot")).alias("_neg"))).over(ahead))
        slots = F.transform(moments, lambda moment: -moment["_neg"])
        return F.size(F.aggregate(slots, F.array().cast("array<int>"), _patience))
    raise ValueError(f"correlation type {spec.type} is not supported")


def _patience(tails: Column, slot: Column) -> Column:
    """One step of patience sorting: `tails[k]` is the least last slot of an increasing chain of k + 1."""
    at = F.array_position(F.transform(tails, lambda tail: tail >= slot), True)
    return F.when(at == 0, F.concat(tails, F.array(slot))).otherwise(
        F.transform(tails, lambda tail, index: F.when(index == at - 1, slot).otherwise(tail)))


def correlation_windows(inputs: DataFrame, rule: CompiledRule, *, max_event_ids: int = MAX_EVENT_IDS,
                        prefilter: bool = True, moments: bool = False) -> DataFrame:
    """One row per burst: tenant, group key and values, window start/end and last match (`_last_us`) in
    µs, `_moment_us`, count, event ids, datasets, entities.

    `_moment_us`: the burst's last match; with `moments`, the first match of the burst whose trailing
    window [t - timespan, t] qualifies (when the condition was met, which a rule chaining this one
    orders by), the last match when none does (a measure that falls as matches join, such as an average).

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
    qualifies = _OPS[spec.op](_measure(spec, ahead), F.lit(spec.count))
    qualifying_start = F.when(F.col("_qualifies"), F.col("_ts_us"))
    previous_start = F.last(qualifying_start, ignorenulls=True).over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    new_burst = F.col("_qualifies") & (previous_start.isNull() | ((F.col("_ts_us") - previous_start) > span))
    scored = {"_qualifies": F.coalesce(qualifies, F.lit(False))}
    moment = F.max("_ts_us")
    if moments:
        met = _OPS[spec.op](_measure(spec, ordered.rangeBetween(-span, 0)), F.lit(spec.count))
        scored["_met"] = F.coalesce(met, F.lit(False))
        moment = F.coalesce(F.min(F.when(F.col("_met"), F.col("_ts_us"))), moment)
    # the columns of each window level in one projection (each DataFrame call is a Py4J round trip and an
    # analysis of the growing plan): the scores, then what reads them, then the burst starts
    members = (
        inputs.withColumns(scored)
        .withColumns({"_covering_start": F.max(qualifying_start).over(ordered.rangeBetween(-span, 0)),
                      "_new_burst": new_burst})
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
            moment.alias("_moment_us"),
            F.count(F.lit(1)).alias("_count"),
            F.first("_group_values").alias("_group_values"),
            F.slice(events, 1, max_event_ids).alias("_events"),
            F.array_sort(F.array_distinct(F.flatten(F.transform(F.collect_set("_dataset"),
                                                                lambda d: F.split(d, ","))))).alias("_datasets"),
            *_entity_unions(),
            F.lit(rule.id).alias("_rule_id"),
        )
    )


def referenced_correlations(rule: CompiledRule, by_id: Mapping[str, CompiledRule]) -> list[str]:
    """The correlation rules `rule` references, directly or through them (children first)."""
    found: list[str] = []
    for reference in _spec(rule).chained:
        child = by_id[reference.rule_id]
        found += [rule_id for rule_id in referenced_correlations(child, by_id) if rule_id not in found]
        if child.id not in found:
            found.append(child.id)
    return found


Windowing = Callable[[CompiledRule, DataFrame, bool], "DataFrame | None"]


def correlation_bursts(inputs: Mapping[str, DataFrame | None], by_id: Mapping[str, CompiledRule], *,
                       windows: Windowing | None = None, one_partition: bool = False) -> dict[str, DataFrame]:
    """The bursts (`correlation_windows` rows) of every correlation in `inputs` (rule id -> its detection
    rules' matches, `correlation_input`; None when none), children before the rules that chain them.

    A child referenced by another rule is materialised once (`localCheckpoint`) and read by both; the
    children of one depth (rules that chain none, then rules that chain only those, ...) together, in one
    Spark job. `windows(rule, frame, moments)` windows one rule's inputs (None: it cannot raise anything;
    `moments`: the rule is chained, `correlation_windows(moments=True)`); default `correlation_windows`. A
    chained rule missing from `inputs` had no matches. `one_partition`: the children of one depth are
    checkpointed in one partition (a pass of a few rows in one partition, whose windows then need no shuffle).
    """
    window = windows or (lambda rule, frame, moments: correlation_windows(frame, rule, moments=moments))
    order: list[str] = []
    for rule_id in inputs:
        for candidate in [*referenced_correlations(by_id[rule_id], by_id), rule_id]:
            if candidate not in order:
                order.append(candidate)
    referenced = {reference.rule_id for rule_id in order for reference in _spec(by_id[rule_id]).chained}
    depth: dict[str, int] = {}
    for rule_id in order:  # children come first in `order`
        depth[rule_id] = 1 + max((depth[reference.rule_id] for reference in _spec(by_id[rule_id]).chained), default=-1)
    bursts: dict[str, DataFrame] = {}
    for level in sorted(set(depth.values())):
        children: dict[str, DataFrame] = {}
        for rule_id in (rule_id for rule_id in order if depth[rule_id] == level):
            rule = by_id[rule_id]
            frames = [frame for frame in [inputs.get(rule_id)] if frame is not None]
            frames += [chained_input(bursts[reference.rule_id], by_id[reference.rule_id], rule)
                       for reference in _spec(rule).chained if reference.rule_id in bursts]
            if not frames:
                continue
            found = window(rule, union_all(frames), rule_id in referenced)
            if found is None:
                continue
            if rule_id in referenced:
                children[rule_id] = found
            else:
                bursts[rule_id] = found
        if len(children) == 1:
            bursts.update({rule_id: found.localCheckpoint(eager=True) for rule_id, found in children.items()})
        elif children:  # one job for the children of this depth, each read back by its rule id
            together = union_all(children.values())
            together = (together.coalesce(1) if one_partition else together).localCheckpoint(eager=True)
            bursts.update({rule_id: together.filter(F.col("_rule_id") == rule_id) for rule_id in children})
    return {rule_id: bursts[rule_id] for rule_id in order if rule_id in bursts}


def every_burst(bursts: Mapping[str, DataFrame], *columns: str) -> DataFrame | None:
    """`_rule_id` and `columns` of every correlation's bursts (rule id -> `correlation_windows` rows) as one
    frame, so that one Spark job collects them all; None when there are none."""
    if not bursts:
        return None
    return union_all([frame.select(F.lit(rule_id).alias("_rule_id"), *columns)
                      for rule_id, frame in bursts.items()])


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
    if not _bucketable(spec):
        return inputs
    needed = _needed(spec)
    span = spec.timespan_seconds * 1_000_000
    keys = ["_tenant", "_group_key"]
    bucketed = inputs.withColumn("_bucket", F.expr(_bucket_sql(span)))
    # pair p holds buckets p and p + 1: a match of bucket b counts in the pairs p = b and p = b - 1;
    # the matches of a pair bound its distinct values too (value_count), with one aggregation less
    pairs = (bucketed.select(*keys, F.explode(F.array("_bucket", F.col("_bucket") - 1)).alias("_pair"))
             .groupBy(*keys, "_pair").agg(F.count(F.lit(1)).alias("_bound")).filter(F.col("_bound") >= needed))
    buckets = pairs.select(*keys, F.explode(F.array("_pair", F.col("_pair") + 1)).alias("_bucket")).distinct()
    return bucketed.join(buckets, on=[*keys, "_bucket"], how="left_semi").drop("_bucket")


def _bucketable(spec: CorrelationSpec) -> bool:
    """`gte`/`gt` on a measure bounded by the window's matches: the bucket filters apply."""
    return spec.op in ("gte", "gt") and spec.type in BOUNDED_BY_MATCHES


def _needed(spec: CorrelationSpec) -> int:
    """The least measure a window must reach under `gte`/`gt` (the bounded measures are integers)."""
    return max(0, math.ceil(spec.count) if spec.op == "gte" else math.floor(spec.count) + 1)


def _bucket_sql(span_us: int) -> str:
    return f"(`_ts_us` - pmod(`_ts_us`, {span_us})) div {span_us}"  # floor division, also before 1970


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
    if not _bucketable(spec):
        return None
    return inputs.selectExpr(f"{(_needed(spec) + 1) // 2} AS `_half`", "xxhash64(`_tenant`, `_group_key`) AS `_key`",
                             f"{_bucket_sql(spec.timespan_seconds * 1_000_000)} AS `_bucket`")


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
    probed = union_all([probe.selectExpr(f"{position} AS `_probe`", "`_half`", "`_key`", "`_bucket`")
                        for position, probe in enumerate(probes.values())])
    return (probed.groupBy("_probe", "_half", "_key", "_bucket").agg(F.expr("count(1) AS `_matches`"))
            .filter("`_matches` >= `_half`")
            .selectExpr(f"element_at(array({', '.join(map(sql_string, ids))}), `_probe` + 1) AS `_rule_id`", "`_key`",
                        "`_bucket`"))


def near_hot_buckets(inputs: DataFrame, rule: CompiledRule, hot: Sequence[tuple[int, int]]) -> DataFrame:
    """`inputs` whose key is one of `hot`'s and whose bucket is in or next to one of `hot`'s buckets.

    That keeps every match in or next to a hot bucket, so every match of every qualifying window; the
    others it keeps change nothing: such a match lies in no qualifying window, and a window starting
    at it spans two buckets that are not hot, so it cannot qualify. Two `IN` sets of longs, no join.
    """
    if not hot:
        return inputs.filter("FALSE")
    keys = sorted({key for key, _ in hot})
    buckets = sorted({bucket + step for _, bucket in hot for step in (-1, 0, 1)})
    bucket = _bucket_sql(_spec(rule).timespan_seconds * 1_000_000)
    return inputs.filter(f"xxhash64(`_tenant`, `_group_key`) IN ({', '.join(f'{key}L' for key in keys)}) "
                         f"AND ({bucket}) IN ({', '.join(f'{value}L' for value in buckets)})")


def _spec(rule: CompiledRule) -> CorrelationSpec:
    if rule.correlation is None:
        raise ValueError(f"rule {rule.id} is not a correlation rule")
    return rule.correlation
