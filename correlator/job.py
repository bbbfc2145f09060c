"""The detection job: read each dataset once, evaluate every rule in one projection, raise alerts.

Typed `DataFrame -> DataFrame` steps (`prepare_events`, `match_rules`, `detection_alert_rows`, and the
correlation steps in `correlator.correlation`); `run_detection` wires read -> transform -> write.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import structlog
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.schema import ARROW_SCHEMA, spark_schema
from correlator.alerts import correlation_alert, detection_alert, store_new_alerts
from correlator.compiler import CompiledRule, CompiledRuleSet, UnsupportedRule
from correlator.correlation import (
    ENTITY_COLUMNS,
    HOT_BUCKETS_MAX,
    correlation_input,
    correlation_windows,
    hot_bucket_bound,
    hot_bucket_probe,
    hot_buckets,
    near_hot_buckets,
)
from correlator.literal_index import (
    LiteralIndex,
    LiteralIndexMode,
    add_literal_columns,
    fold_contains,
    literal_gate,
    use_jvm,
)
from correlator.normalize import (
    add_normalized_columns,
    inline_normalized,
    normalized_columns,
    routed_only_fields,
)
from correlator.routing import plan_chunks, route_fields, rule_hits, rule_prefilter

log = structlog.get_logger(__name__)

LAKE_PARTITIONS = ("dataset", "tenant", "day")  # the lake's folders: events/dataset=<d>/tenant=<t>/day=<d>
RULES_PER_PROJECTION = 200  # keeps generated code inside the JVM's 64 KB method limit
# At most this many unrouted rules (not behind the literal gate) join a routed chunk: one scan of the
# events less (`routing.plan_chunks`; CloudTrail's one unrouted SigmaHQ rule: bench/README.md).
FOLD_UNROUTED_MAX = 8


@dataclass
class DetectionResult:
    events: dict[str, int] = field(default_factory=dict)  # dataset -> rows evaluated (`count_events`)
    matches: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> rule id -> matched events
    alerts_by_rule: dict[str, int] = field(default_factory=dict)  # rule id -> alerts raised in this run
    new_alerts: list[dict[str, Any]] = field(default_factory=list)  # not stored before this run
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every alert raised in this run
    unsupported: list[UnsupportedRule] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds ("<dataset> match", ...)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def window_days(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    """First and last UTC day (`YYYY-MM-DD`, the lake's `day=` partitions) that [since, until) touches."""
    first = last = None
    if since is not None:
        _micros(since)
        first = since.astimezone(UTC).date().isoformat()
    if until is not None:
        _micros(until)
        last = (until.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat()
    return first, last


def window_condition(spark: SparkSession, micros: Column, since: datetime | None, until: datetime | None, *,
                     jvm: bool | None = None) -> Column:
    """`since <= micros < until` (either bound may be None: open) for a column of epoch microseconds.

    With CitySOC's JVM functions (`jvm` None: when the session has them) the bounds travel in an object
    that generated code holds by reference (`citysoc_in_window`), not as Java literals: a query over
    the next window is the same code, so a service with a moving window (`soc detect --every`) neither
    compiles its plans' classes again every run nor starts the JIT's work on them over
    (`bench/README.md`, session 10). Without them, plain comparisons (same rows).
    """
    low = None if since is None else _micros(since)
    high = None if until is None else _micros(until)
    if jvm is None:
        from correlator.jvm import functions_available

        jvm = functions_available(spark)
    if jvm:
        from correlator.jvm import register_functions

        register_functions(spark)
        return F.call_function("citysoc_in_window", micros, *(F.lit(bound).cast("bigint") for bound in (low, high)))
    tests = ([] if low is None else [micros >= F.lit(low)]) + ([] if high is None else [micros < F.lit(high)])
    return reduce(Column.__and__, tests, F.lit(True))


def prepare_events(events: DataFrame, *, since: datetime | None = None, until: datetime | None = None,
                   deduplicate: bool = True, columns: Collection[str] | None = None) -> DataFrame:
    """Add `_tenant`, `_event_id`, `_ts_us`, `_dataset` and the entity columns; keep [since, until).

    `deduplicate` drops at-least-once duplicates (same tenant and `event.id`) here, which shuffles
    whole rows; `run_detection` passes False and de-duplicates the (few, narrow) matches instead.
    `columns`: the frame's top-level columns, when the caller knows them (`read_events`); else they
    are asked of the JVM (the whole nested schema, about 45 ms for ours).
    """
    present = frozenset(events.columns if columns is None else columns)
    first, last = window_days(since, until)
    if "day" in present:  # partition pruning before the row filter
        if first is not None:
            events = events.filter(F.col("day").cast("string") >= F.lit(first))
        if last is not None:
            events = events.filter(F.col("day").cast("string") <= F.lit(last))
    tenant = F.col("organization.id")
    if "tenant" in present:
        tenant = F.coalesce(tenant, F.col("tenant").cast("string"))
    dataset = F.col("event.dataset")
    if "dataset" in present:
        dataset = F.coalesce(dataset, F.col("dataset").cast("string"))
    columns = {"_tenant": tenant, "_event_id": F.col("event.id"), "_ts_us": F.unix_micros(F.col("`@timestamp`")),
               "_dataset": dataset, **{column: F.col(name) for name, column in ENTITY_COLUMNS.items()}}
    condition = F.col("_tenant").isNotNull() & F.col("_event_id").isNotNull() & F.col("_ts_us").isNotNull()
    if since is not None or until is not None:
        condition = condition & window_condition(events.sparkSession, F.col("_ts_us"), since, until)
    prepared = events.withColumns(columns).filter(condition)  # one projection, one filter: few plan analyses
    if deduplicate:
        prepared = prepared.dropDuplicates(["_tenant", "_event_id"])
    return prepared


def partition_paths(events_dir: Path, dataset: str, *, since: datetime | None = None,
                    until: datetime | None = None) -> list[Path]:
    """The `tenant=*/day=*` folders of a dataset that hold files and whose day is in [since, until)."""
    first, last = window_days(since, until)
    paths = []
    for folder in sorted((events_dir / f"dataset={dataset}").glob("tenant=*/day=*")):
        day = folder.name.removeprefix("day=")
        if (first is None or day >= first) and (last is None or day <= last) and any(folder.glob("*.parquet")):
            paths.append(folder)
    return paths


def count_events(events_dir: Path, dataset: str, *, since: datetime | None = None,
                 until: datetime | None = None) -> int:
    """Rows of a dataset that `read_events` evaluates: in [since, until), with a tenant, an id and a time.

    Counted by Arrow from the same day folders: row-group metadata answers whole files, only the
    columns of the filter are read where it must (`tests/correlator/test_job.py` checks the count
    against Spark's). A file replayed into the lake by hand counts twice here; its matches do not.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = [str(file) for folder in partition_paths(events_dir, dataset, since=since, until=until)
             for file in sorted(folder.glob("*.parquet"))]
    if not files:
        return 0
    lake = ds.dataset(files, format="parquet", partitioning=ds.partitioning(flavor="hive"),
                      partition_base_dir=str(events_dir))
    # every folder is `tenant=<t>/day=<d>`, so a row always has a tenant, as `prepare_events`'s coalesce
    condition = pc.field("event", "id").is_valid() & pc.field("@timestamp").is_valid()
    moment = pa.timestamp("us", tz="UTC")
    if since is not None:
        condition = condition & (pc.field("@timestamp") >= pa.scalar(since.astimezone(UTC), moment))
    if until is not None:
        condition = condition & (pc.field("@timestamp") < pa.scalar(until.astimezone(UTC), moment))
    return int(lake.count_rows(filter=condition))


def read_events(spark: SparkSession, events_dir: Path, dataset: str, *, since: datetime | None = None,
                until: datetime | None = None, deduplicate: bool = True) -> DataFrame | None:
    """One dataset of the lake, prepared, reading only the day folders in the window; None when empty."""
    paths = partition_paths(events_dir, dataset, since=since, until=until)
    if not paths:
        return None
    frame = spark.read.schema(spark_schema()).option("basePath", str(events_dir)).parquet(*map(str, paths))
    return prepare_events(frame, since=since, until=until, deduplicate=deduplicate,
                          columns=(*ARROW_SCHEMA.names, *LAKE_PARTITIONS))


def match_rules(events: DataFrame, rules: Sequence[CompiledRule], *,
                chunk_size: int = RULES_PER_PROJECTION, routed: bool = True,
                literal_index: LiteralIndexMode = "auto") -> DataFrame:
    """One row per (event, matching rule): the event's columns plus `_rule_id`.

    Rules are packed into projections of at most `chunk_size` predicates (`correlator.routing`).
    With `routed`, a rule with a route is only evaluated for events whose routing key is one of its
    values, and each chunk of routed rules first drops the events none of its rules can match;
    `routed=False` evaluates every rule on every event (same result, slower: kept for comparison).
    The rules evaluated on every event answer their `contains` tests from one multi-literal pass per
    field (`correlator.literal_index`): `"auto"` uses the JVM UDF when it is available, `"builtin"`
    built-in expressions, `"off"` the plain expressions (same result: kept as the reference).
    """
    if not rules:
        raise ValueError("match_rules needs at least one rule")
    if not routed:
        rules = [replace(rule, routing=None) for rule in rules]
    # CitySOC's JVM functions: route prefilters and routed `contains` read the fields themselves, folding
    # case while they read (`literal_index.folded_call`), instead of a lower-cased copy of every value
    functions = events.sparkSession if literal_index != "off" and use_jvm(events.sparkSession, literal_index) \
        else None
    # lower() once per row, not per rule; a field only routed rules read (any field they read, with the
    # functions) is lowered inside them instead (`normalize.routed_only_fields`): only for the events
    # routed to one of them. Unrouted rules still read the column.
    keys = route_fields(rules)
    inline = routed_only_fields(rules, keys, folded=functions is not None)
    unrouted = frozenset().union(*(rule.normalized_fields for rule in rules if rule.routing is None))
    normalized = frozenset().union(*(rule.normalized_fields for rule in rules), keys) - (inline - unrouted)
    events = add_normalized_columns(events, normalized)
    # Unrouted rules share one multi-literal pass per field (the literal index).
    index = LiteralIndex({}) if literal_index == "off" else \
        LiteralIndex.of(rule for rule in rules if rule.routing is None)
    events = add_literal_columns(events, index, mode=literal_index)
    # Routed rules (with the functions) answer their `contains` from the field's bytes, an OR of many
    # on one field with one pass over it, and lower the other fields they read themselves.
    rules = [index.rewrite(rule) if rule.routing is None
             else inline_normalized(rule if functions is None else fold_contains(functions, rule), inline)
             for rule in rules]
    # Unrouted rules that need one of the indexed literals only run on the events that have one.
    gated = [rule for rule in rules if rule.routing is None and index.covers(rule)]
    gated_ids = {rule.id for rule in gated}
    ungated = [rule for rule in rules if rule.id not in gated_ids]
    # A folded rule reading a literal bitmap would have the prefilter compute that bitmap for every
    # event and the projection again: such rules keep their own chunk.
    foldable = not any(column in rule.expression for rule in ungated if rule.routing is None
                       for column in index.columns)
    chunks = [(chunk, rule_prefilter(chunk, functions=functions)) for chunk in
              plan_chunks(ungated, chunk_size=chunk_size, fold_unrouted=FOLD_UNROUTED_MAX if foldable else 0)]
    chunks += [(chunk, literal_gate(events.sparkSession, index, chunk.unrouted, mode=literal_index))
               for chunk in plan_chunks(gated, chunk_size=chunk_size)]
    parts: list[DataFrame] = []
    for chunk, prefilter in chunks:
        candidates = events if prefilter is None else events.filter(prefilter)
        parts.append(candidates.select("*", F.explode(F.array_compact(rule_hits(chunk))).alias("_rule_id")))
    matched = parts[0]
    for part in parts[1:]:
        matched = matched.unionByName(part)
    return matched.drop(*normalized_columns(normalized), *index.columns)


def _default_group_key() -> Column:
    present = [F.concat(F.lit(f"{name}="), F.col(column)) for name, column in ENTITY_COLUMNS.items()]
    return F.coalesce(*present, F.concat(F.lit("event.id="), F.col("_event_id")))


def detection_alert_rows(matches: DataFrame, rules: Sequence[CompiledRule]) -> DataFrame:
    """Narrow rows for the alerting detection rules: tenant, rule, event, time, entities, group key."""
    from correlator.correlation import group_key_column

    alerting = [rule for rule in rules if rule.generate]
    group_key = _default_group_key()
    custom = [rule for rule in alerting if rule.group_by]
    if custom:
        case = F.when(F.lit(False), F.lit(None))
        for rule in custom:
            names = tuple(name for name, _ in rule.group_by)
            exprs = tuple(expr for _, expr in rule.group_by)
            case = case.when(F.col("_rule_id") == rule.id, group_key_column(names, exprs))
        group_key = F.coalesce(case.otherwise(F.lit(None)), group_key)
    return (
        matches.filter(F.col("_rule_id").isin([rule.id for rule in alerting]))
        .select("_tenant", "_rule_id", "_event_id", "_ts_us", "_dataset", *ENTITY_COLUMNS.values(),
                group_key.alias("_group_key"))
    )


MATCH_COLUMNS: tuple[str, ...] = ("_tenant", "_event_id", "_ts_us", "_dataset", *ENTITY_COLUMNS.values(), "_rule_id")


_FIELD_PATH = re.compile(r"`[^`]+`(?:\.`[^`]+`)*")


def _leaves(paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """Nested dict of the field paths; a path that names a whole struct swallows its children."""
    tree: dict[str, Any] = {}
    for path in sorted(set(paths), key=len):
        node = tree
        for depth, part in enumerate(path):
            if node.get(part) is True:  # an ancestor is kept whole
                break
            if depth == len(path) - 1:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    return tree


def _pruned(prefix: tuple[str, ...], tree: dict[str, Any] | bool) -> Column:
    column = F.col(".".join(f"`{part}`" for part in prefix))
    if tree is True:
        return column
    assert isinstance(tree, dict)
    return F.struct(*(_pruned((*prefix, name), sub).alias(name) for name, sub in sorted(tree.items())))


def narrow_matches(matches: DataFrame, detections: Sequence[CompiledRule], correlations: Sequence[CompiledRule],
                   *, columns: Collection[str] | None = None) -> DataFrame:
    """`matches` narrowed to what alerts and correlations read, so the scan skips every other column.

    Group-by and value expressions come from `resolve_field`, which back-quotes every part of a field
    path (`` `source`.`ip` ``): each top-level column they name is kept as a struct of only the
    leaves they read, so the same expressions still resolve. `columns`: the top-level columns of
    `matches`, when the caller knows them (else asked of the JVM, as in `prepare_events`).
    """
    exprs = [expr for rule in [*detections, *correlations] for _, expr in rule.group_by]
    exprs += [c.correlation.value_expr for c in correlations if c.correlation and c.correlation.value_expr]
    paths = [tuple(part.strip("`") for part in found.split("`.`"))
             for expr in exprs for found in _FIELD_PATH.findall(expr)]
    if columns is None:
        columns = matches.columns if paths else ()
    present = frozenset(columns)
    tree = _leaves(path for path in paths if path[0] in present and path[0] not in MATCH_COLUMNS)
    return matches.select(*MATCH_COLUMNS, *(_pruned((name,), sub).alias(name) for name, sub in sorted(tree.items())))


def _entities_of(row: Any, *, lists: bool) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, column in ENTITY_COLUMNS.items():
        value = row[column]
        values[name] = [v for v in value if v] if lists else ([value] if value else [])
    return values


def unique_matches(matches: DataFrame) -> tuple[DataFrame, dict[str, int]]:
    """`matches` (materialised) with each (tenant, event, rule) once, and the matched events per rule.

    At-least-once deliveries match once. Duplicates are rare, and de-duplicating the rows themselves
    sorts them (Spark keeps `first()` of a string in a sort-based aggregation): one query counts the
    rows per rule and per 64-bit hash of (tenant, event) first. When no hash occurs twice within a
    rule, the keys are distinct and the sums are the counts; only when one does (a duplicate, or a
    collision) are the rows de-duplicated by their key and counted again.
    """
    per_rule = (matches.groupBy("_rule_id", F.xxhash64("_tenant", "_event_id").alias("_key")).count()
                .groupBy("_rule_id").agg(F.sum("count").alias("count"), F.max("count").alias("_most")).collect())
    if all(row["_most"] == 1 for row in per_rule):
        return matches, {row["_rule_id"]: row["count"] for row in per_rule}
    unique = matches.dropDuplicates(["_tenant", "_event_id", "_rule_id"]).localCheckpoint(eager=True)
    return unique, {row["_rule_id"]: row["count"] for row in unique.groupBy("_rule_id").count().collect()}


@dataclass
class _DatasetRun:
    """What one dataset's detection gives `run_detection` (`_detect_dataset` runs on a worker thread)."""

    dataset: str
    events: int = 0
    matches: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    correlation_inputs: dict[str, DataFrame] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _detect_dataset(spark: SparkSession, dataset: str, *, events_dir: Path, rules: CompiledRuleSet,
                    since: datetime | None, until: datetime | None) -> _DatasetRun | None:
    run = _DatasetRun(dataset)
    started = time.perf_counter()
    detections = rules.detections(dataset)
    events = read_events(spark, events_dir, dataset, since=since, until=until, deduplicate=False)
    if events is None or not detections:
        return None
    correlations = [c for c in rules.correlations() if dataset in c.datasets]
    by_id = {rule.id: rule for rule in [*detections, *correlations]}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"citysoc-count-{dataset}") as counter:
        # Arrow reads the files' metadata beside Spark's scan instead of after it
        counted = counter.submit(count_events, events_dir, dataset, since=since, until=until)
        # One scan of the lake that reads only the columns the rules and the alerts need (Spark prunes
        # nested Parquet columns); only matched rows are kept and checkpointed, once per (tenant, event,
        # rule): what follows reads a small table, not the rules' plan again.
        matches, run.matches = unique_matches(
            narrow_matches(match_rules(events, detections), detections, correlations, columns=ARROW_SCHEMA.names)
            .localCheckpoint(eager=True))
        run.timings[f"{dataset} match"] = time.perf_counter() - started
        started = time.perf_counter()
        run.events = counted.result()
        run.timings[f"{dataset} count"] = time.perf_counter() - started  # waited for, after the match
    started = time.perf_counter()
    for row in detection_alert_rows(matches, detections).collect():
        run.alerts.append(detection_alert(
            by_id[row["_rule_id"]], tenant=row["_tenant"], dataset=row["_dataset"], event_id=row["_event_id"],
            ts_us=row["_ts_us"], entities=_entities_of(row, lists=False), group_key=row["_group_key"]))
    inputs = {correlation.id: correlation_input(matches, correlation, unique_matches=True)
              for correlation in correlations}
    run.timings[f"{dataset} alerts"] = time.perf_counter() - started
    # Correlations over this dataset alone run here, beside the other datasets' matching; those over
    # several datasets wait for all of them (`run_detection`).
    started = time.perf_counter()
    own = {rule_id: [frame] for rule_id, frame in inputs.items() if set(by_id[rule_id].datasets) == {dataset}}
    run.correlation_inputs = {rule_id: frame for rule_id, frame in inputs.items() if rule_id not in own}
    if own:
        run.alerts.extend(correlation_alerts(own, by_id, run.matches))
        run.timings[f"{dataset} correlations"] = time.perf_counter() - started
    log.debug("dataset evaluated", dataset=dataset, events=run.events, rules=len(detections))
    return run


def correlation_alerts(inputs_by_rule: dict[str, list[DataFrame]], by_id: dict[str, CompiledRule],
                       matches: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One alert per burst of each correlation, from its inputs (one per dataset).

    First one aggregation finds, for every `gte`/`gt` correlation at once, the buckets where a burst
    can be (`hot_bucket_probe`, `hot_buckets`); a correlation with none raises nothing and is not
    windowed at all, the others window only the matches near them. Then one job for the windows of
    them all. Too many hot buckets to collect: every correlation windows all its matches. `matches`
    (rule id -> matched events, over the inputs' datasets) bounds the hot buckets: when they must all
    fit, they are collected without a limit (Spark runs a limit's partitions one job after another).
    """
    combined = {rule_id: reduce(DataFrame.unionByName, inputs) for rule_id, inputs in inputs_by_rule.items()}
    probes = {rule_id: probe for rule_id, frame in combined.items()
              if (probe := hot_bucket_probe(frame, by_id[rule_id])) is not None}
    hot: dict[str, list[tuple[int, int]]] = {rule_id: [] for rule_id in probes}
    complete = True  # every hot bucket collected (at most HOT_BUCKETS_MAX a rule, on average, reach the driver)
    if probes:
        cap = HOT_BUCKETS_MAX * len(probes)
        found = hot_buckets(probes)
        if matches is not None and sum(hot_bucket_bound(by_id[rule_id], matches) for rule_id in probes) <= cap:
            rows = found.collect()
        else:
            rows = found.limit(cap + 1).collect()
        complete = len(rows) <= cap
        for row in rows:
            hot[row["_rule_id"]].append((row["_key"], row["_bucket"]))
    windows: list[DataFrame] = []
    for rule_id, frame in combined.items():
        rule = by_id[rule_id]
        if rule_id in probes and complete and not hot[rule_id]:
            continue  # no bucket holds half the threshold: no window can reach it
        if rule_id in probes and complete and len(hot[rule_id]) <= HOT_BUCKETS_MAX:
            windows.append(correlation_windows(near_hot_buckets(frame, rule, hot[rule_id]), rule, prefilter=False))
        else:  # lt/lte/eq/neq (every match may count), or bursts everywhere
            windows.append(correlation_windows(frame, rule))
    if not windows:
        return []
    bursts = reduce(DataFrame.unionByName, windows)
    return [correlation_alert(
        by_id[row["_rule_id"]], tenant=row["_tenant"], datasets=row["_datasets"], group_key=row["_group_key"],
        window_start_us=row["_burst_start"], window_end_us=row["_burst_end"],
        event_ids=[event["_event_id"] for event in row["_events"]], count=row["_count"],
        entities=_entities_of(row, lists=True)) for row in bursts.collect()]


PARALLEL_DATASETS = 2  # datasets detected at once: one's driver work and last tasks overlap the other's scan


def run_detection(spark: SparkSession, *, events_dir: Path, alerts_dir: Path, rules: CompiledRuleSet,
                  since: datetime | None = None, until: datetime | None = None,
                  parallel_datasets: int = PARALLEL_DATASETS) -> DetectionResult:
    """Detect over the lake in [since, until), store alerts not stored before, report what happened.

    Datasets are detected `parallel_datasets` at a time, each as its own Spark jobs (Spark's FIFO
    scheduler gives a free core to the other dataset's tasks); results are merged in dataset order.
    """
    if parallel_datasets < 1:
        raise ValueError("parallel_datasets must be at least 1")
    result = DetectionResult(unsupported=list(rules.unsupported))
    by_id = {rule.id: rule for rule in rules.rules}
    alerts: list[dict[str, Any]] = []
    correlation_inputs: dict[str, list[DataFrame]] = {}

    def detect(dataset: str) -> _DatasetRun | None:
        return _detect_dataset(spark, dataset, events_dir=events_dir, rules=rules, since=since, until=until)

    datasets = list(rules.datasets)
    if parallel_datasets == 1 or len(datasets) < 2:
        runs = [detect(dataset) for dataset in datasets]
    else:
        with ThreadPoolExecutor(max_workers=parallel_datasets, thread_name_prefix="citysoc-detect") as pool:
            runs = list(pool.map(detect, datasets))
    for run in runs:
        if run is None:
            continue
        result.events[run.dataset] = run.events
        result.matches[run.dataset] = run.matches
        result.timings.update(run.timings)
        alerts.extend(run.alerts)
        for rule_id, frame in run.correlation_inputs.items():
            correlation_inputs.setdefault(rule_id, []).append(frame)
    started = time.perf_counter()
    matched = sum(map(Counter, result.matches.values()), Counter[str]())
    alerts.extend(correlation_alerts(correlation_inputs, by_id, matched))
    result.timings["correlations"] = time.perf_counter() - started
    started = time.perf_counter()
    alerts.sort(key=lambda a: (a["@timestamp"], a["id"]))
    result.alerts = alerts
    for alert in alerts:
        result.alerts_by_rule[alert["rule"]["id"]] = result.alerts_by_rule.get(alert["rule"]["id"], 0) + 1
    result.new_alerts = store_new_alerts(alerts_dir, alerts)
    result.timings["store"] = time.perf_counter() - started
    log.debug("detection done", alerts=len(alerts), new_alerts=len(result.new_alerts))
    return result
