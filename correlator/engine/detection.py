"""The detection job: read each dataset once, evaluate every rule in one pass, raise alerts.

Typed `DataFrame -> DataFrame` steps (`correlator.engine.events`, `correlator.engine.matching`,
`detection_alert_rows`, `narrow_matches`, and the correlation steps of `correlator.engine.correlation`);
`run_detection` wires read (the event store) -> transform -> write (the alert store).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.schema import ARROW_SCHEMA
from citysoc.store import EventStore
from correlator.engine.alerts import correlation_alert, detection_alert, store_new_alerts
from correlator.engine.correlation import (
    correlation_bursts,
    correlation_input,
    correlation_windows,
    group_key_sql,
    hot_bucket_bound,
    hot_bucket_probe,
    hot_buckets,
    near_hot_buckets,
    referenced_correlations,
)
from correlator.engine.events import ENTITY_COLUMNS, prepare_events
from correlator.engine.matching import match_rules
from correlator.engine.options import EngineOptions
from correlator.engine.plan import plan_matching
from correlator.engine.session import engine_options
from correlator.engine.unions import union_all
from correlator.model import ENTITY_FIELDS, GROUPING_ENTITY_FIELDS, CompiledRule, CompiledRuleSet, UnsupportedRule
from correlator.sql import in_list_sql, sql_string

log = structlog.get_logger(__name__)


@dataclass
class DetectionResult:
    events: dict[str, int] = field(default_factory=dict)  # dataset -> rows evaluated (`EventStore.count`)
    matches: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> rule id -> matched events
    alerts_by_rule: dict[str, int] = field(default_factory=dict)  # rule id -> alerts raised in this run
    new_alerts: list[dict[str, Any]] = field(default_factory=list)  # not stored before this run
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every alert raised in this run
    unsupported: list[UnsupportedRule] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds ("<dataset> match", ...)


def read_events(spark: SparkSession, store: EventStore, dataset: str, *, since: datetime | None = None,
                until: datetime | None = None, tenants: Collection[str] | None = None,
                deduplicate: bool = True, options: EngineOptions | None = None) -> DataFrame | None:
    """One dataset of the store, prepared (`prepare_events`), in [since, until); None when empty. The entity
    fields the store knows no event of the frame fills are not read (`EventStore.fields_without_values`)."""
    frame = store.read(spark, dataset, since=since, until=until, tenants=tenants)
    if frame is None:
        return None
    functions = (options or engine_options(spark)).jvm_functions
    return prepare_events(frame, since=since, until=until, deduplicate=deduplicate, columns=store.columns,
                          functions=functions, absent=store.fields_without_values(frame, ENTITY_FIELDS))


def _default_group_key() -> str:
    """SQL of the first grouping entity an event has (`user.name=alice`), else its event id; never an
    indicator-only entity (`GROUPING_ENTITY_FIELDS`)."""
    present = [f"concat({sql_string(name + '=')}, `{ENTITY_COLUMNS[name]}`)" for name in GROUPING_ENTITY_FIELDS]
    return f"coalesce({', '.join(present)}, concat('event.id=', `_event_id`))"


def detection_alert_rows(matches: DataFrame, rules: Sequence[CompiledRule]) -> DataFrame:
    """Narrow rows for the alerting detection rules: tenant, rule, event, time, entities, group key.

    Spelt as SQL text: a column name or function in a `select` costs Py4J round trips of its own, a
    list element one more (the rule ids alone were about 500 a run)."""
    alerting = [rule for rule in rules if rule.generate]
    group_key = _default_group_key()
    custom = [rule for rule in alerting if rule.group_by]
    if custom:
        cases = " ".join(f"WHEN `_rule_id` = {sql_string(rule.id)} THEN {group_key_sql(rule.group_by)}"
                         for rule in custom)
        group_key = f"coalesce(CASE {cases} END, {group_key})"
    alerting_ids = in_list_sql("`_rule_id`", [rule.id for rule in alerting]) if alerting else "FALSE"
    return matches.filter(alerting_ids).selectExpr(
        *(f"`{name}`" for name in ("_tenant", "_rule_id", "_event_id", "_ts_us", "_dataset", *ENTITY_COLUMNS.values())),
        f"{group_key} AS `_group_key`")


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


def _pruned(prefix: tuple[str, ...], tree: dict[str, Any] | bool) -> str:
    """SQL of the column at `prefix`, cut to the leaves of `tree` (`_leaves`)."""
    column = ".".join(f"`{part}`" for part in prefix)
    if tree is True:
        return column
    assert isinstance(tree, dict)
    return "named_struct(" + ", ".join(f"{sql_string(name)}, {_pruned((*prefix, name), sub)}"
                                       for name, sub in sorted(tree.items())) + ")"


def narrow_matches(matches: DataFrame, detections: Sequence[CompiledRule], correlations: Sequence[CompiledRule],
                   *, columns: Collection[str] | None = None) -> DataFrame:
    """`matches` narrowed to what alerts and correlations read, so the scan skips every other column.

    Group-by and value expressions come from `resolve_field`, which back-quotes every part of a field
    path (`` `source`.`ip` ``): each top-level column they name is kept as a struct of only the
    leaves they read, so the same expressions still resolve. `columns`: the top-level columns of
    `matches`, when the caller knows them (else asked of the JVM, as in `prepare_events`).
    """
    exprs = [expr for rule in [*detections, *correlations] for _, expr in rule.group_by]
    exprs += [expr for c in correlations if c.correlation for expr in c.correlation.expressions]
    paths = [tuple(part.strip("`") for part in found.split("`.`"))
             for expr in exprs for found in _FIELD_PATH.findall(expr)]
    if columns is None:
        columns = matches.columns if paths else ()
    present = frozenset(columns)
    tree = _leaves(path for path in paths if path[0] in present and path[0] not in MATCH_COLUMNS)
    return matches.selectExpr(*(f"`{name}`" for name in MATCH_COLUMNS),
                              *(f"{_pruned((name,), sub)} AS `{name}`" for name, sub in sorted(tree.items())))


def _entities_of(row: Mapping[str, Any], *, lists: bool) -> dict[str, list[str]]:
    """The entity values of a collected row (`Row.asDict()`: a `Row` looks each name up in its field list)."""
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
    per_rule = (matches.groupBy("_rule_id", F.expr("xxhash64(`_tenant`, `_event_id`) AS `_key`")).count()
                .groupBy("_rule_id").agg(F.expr("sum(`count`) AS `count`"), F.expr("max(`count`) AS `_most`"))
                .collect())
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


def _detect_dataset(spark: SparkSession, dataset: str, *, store: EventStore, rules: CompiledRuleSet,
                    since: datetime | None, until: datetime | None, options: EngineOptions,
                    tenants: Collection[str] | None = None) -> _DatasetRun | None:
    run = _DatasetRun(dataset)
    started = time.perf_counter()
    detections = rules.detections(dataset)
    events = read_events(spark, store, dataset, since=since, until=until, tenants=tenants, deduplicate=False,
                         options=options)
    if events is None or not detections:
        return None
    correlations = [c for c in rules.correlations() if dataset in c.datasets]
    by_id = {rule.id: rule for rule in [*detections, *correlations]}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"citysoc-count-{dataset}") as counter:
        # the store counts beside Spark's scan instead of after it
        counted = counter.submit(store.count, dataset, since=since, until=until, tenants=tenants)
        # One scan of the store that reads only the columns the rules and the alerts need (Spark prunes
        # nested Parquet columns); only matched rows are kept and checkpointed, once per (tenant, event,
        # rule): what follows reads a small table, not the rules' plan again.
        matched = match_rules(events, plan_matching(detections, options))
        matches, run.matches = unique_matches(
            narrow_matches(matched, detections, correlations, columns=ARROW_SCHEMA.names).localCheckpoint(eager=True))
        run.timings[f"{dataset} match"] = time.perf_counter() - started
        started = time.perf_counter()
        run.events = counted.result()
        run.timings[f"{dataset} count"] = time.perf_counter() - started  # waited for, after the match
    started = time.perf_counter()
    for collected in detection_alert_rows(matches, detections).collect():
        row = collected.asDict()
        run.alerts.append(detection_alert(
            by_id[row["_rule_id"]], tenant=row["_tenant"], dataset=row["_dataset"], event_id=row["_event_id"],
            ts_us=row["_ts_us"], entities=_entities_of(row, lists=False), group_key=row["_group_key"]))
    inputs = {correlation.id: correlation_input(matches, correlation, unique_matches=True)
              for correlation in correlations}
    run.timings[f"{dataset} alerts"] = time.perf_counter() - started
    # Correlations over this dataset alone run here, beside the other datasets' matching; those over
    # several datasets wait for all of them (`run_detection`).
    started = time.perf_counter()
    # a correlation chained by one over several datasets waits with it
    every_correlation = {rule.id: rule for rule in rules.correlations()}
    deferred = {chained for rule in correlations if set(rule.datasets) != {dataset}
                for chained in referenced_correlations(rule, every_correlation)}
    own = {rule_id: [frame] for rule_id, frame in inputs.items()
           if set(by_id[rule_id].datasets) == {dataset} and rule_id not in deferred}
    run.correlation_inputs = {rule_id: frame for rule_id, frame in inputs.items() if rule_id not in own}
    if own:
        run.alerts.extend(correlation_alerts(own, by_id, run.matches, hot_buckets_max=options.hot_buckets_max))
        run.timings[f"{dataset} correlations"] = time.perf_counter() - started
    log.debug("dataset evaluated", dataset=dataset, events=run.events, rules=len(detections))
    return run


def correlation_alerts(inputs_by_rule: dict[str, list[DataFrame]], by_id: dict[str, CompiledRule],
                       matches: Mapping[str, int] | None = None, *,
                       hot_buckets_max: int = EngineOptions.hot_buckets_max) -> list[dict[str, Any]]:
    """One alert per burst of each correlation, from its inputs (one per dataset).

    First one aggregation finds, for every `gte`/`gt` correlation at once whose measure is bounded by
    its matches and that chains no other, the buckets where a burst can be (`hot_bucket_probe`,
    `hot_buckets`); a correlation with none raises nothing and is not windowed at all, the others window
    only the matches near them. Then the windows of them all (`correlation_bursts`: children first);
    only the rules that generate alerts are collected. A rule with more than `hot_buckets_max` hot
    buckets windows all its matches, unfiltered: its matches are dense, and a second density filter
    costs more than it drops (`bench/correlation.py`). `matches` (rule id -> matched events, over the
    inputs' datasets) bounds the hot buckets: when they must all fit, they are collected at once;
    otherwise they are materialised and counted per rule first.
    """
    combined = {rule_id: union_all(inputs) for rule_id, inputs in inputs_by_rule.items()}
    # rules chaining others window their inputs as they come (their matches exist only once the
    # children's are known); the others are probed together first
    probes = {rule_id: probe for rule_id, frame in combined.items()
              if not _chains(by_id[rule_id]) and (probe := hot_bucket_probe(frame, by_id[rule_id])) is not None}
    hot: dict[str, list[tuple[int, int]]] = {rule_id: [] for rule_id in probes}
    if probes:
        found = hot_buckets(probes)
        if matches is not None and sum(hot_bucket_bound(by_id[rule_id], matches)
                                       for rule_id in probes) <= hot_buckets_max * len(probes):
            rows = found.collect()
        else:  # counted per rule first (a limit would run the aggregation's partitions one after another)
            found = found.localCheckpoint(eager=True)
            counts = {row["_rule_id"]: row["count"] for row in found.groupBy("_rule_id").count().collect()}
            fitting = [rule_id for rule_id in probes if counts.get(rule_id, 0) <= hot_buckets_max]
            rows = found.filter(in_list_sql("`_rule_id`", fitting)).collect() if fitting else []
            hot = {rule_id: [] for rule_id in fitting}
        for row in rows:
            hot[row["_rule_id"]].append((row["_key"], row["_bucket"]))
    # the rules whose hot buckets all reached the driver (at most hot_buckets_max each)
    complete = {rule_id for rule_id, buckets in hot.items() if len(buckets) <= hot_buckets_max}

    def windows(rule: CompiledRule, frame: DataFrame, moments: bool) -> DataFrame | None:
        if rule.id in complete and not hot[rule.id]:
            return None  # no bucket holds half the threshold: no window can reach it
        if rule.id in complete:
            return correlation_windows(near_hot_buckets(frame, rule, hot[rule.id]), rule, prefilter=False,
                                       moments=moments)
        # lt/lte/eq/neq, sums, averages and chains: the pair-of-buckets filter where it applies; more hot
        # buckets than the driver takes: every match (the pairs of such dense matches pass that filter anyway)
        return correlation_windows(frame, rule, moments=moments, prefilter=rule.id not in probes)

    bursts = [frame for rule_id, frame in correlation_bursts(combined, by_id, windows=windows).items()
              if by_id[rule_id].generate]
    if not bursts:
        return []
    return [correlation_alert(
        by_id[row["_rule_id"]], tenant=row["_tenant"], datasets=row["_datasets"], group_key=row["_group_key"],
        window_start_us=row["_burst_start"], window_end_us=row["_burst_end"], last_event_us=row["_last_us"],
        event_ids=[event["_event_id"] for event in row["_events"]], count=row["_count"],
        entities=_entities_of(row, lists=True))
        for row in (collected.asDict() for collected in union_all(bursts).collect())]


def _chains(rule: CompiledRule) -> bool:
    return rule.correlation is not None and bool(rule.correlation.chained)


def run_detection(spark: SparkSession, *, store: EventStore, alerts_dir: Path, rules: CompiledRuleSet,
                  since: datetime | None = None, until: datetime | None = None,
                  options: EngineOptions | None = None, tenants: Collection[str] | None = None) -> DetectionResult:
    """Detect over the store in [since, until) (the `tenants`' events only, when given), store alerts not
    stored before, report what happened.

    Datasets are detected `options.parallel_datasets` at a time, each as its own Spark jobs (Spark's
    FIFO scheduler gives a free core to the other dataset's tasks): one dataset's driver work and last
    tasks overlap another's scan. Results are merged in dataset order. `options`: the session's
    defaults (`engine_options`) when None.
    """
    options = options or engine_options(spark)
    result = DetectionResult(unsupported=list(rules.unsupported))
    by_id = {rule.id: rule for rule in rules.rules}
    alerts: list[dict[str, Any]] = []
    correlation_inputs: dict[str, list[DataFrame]] = {}

    def detect(dataset: str) -> _DatasetRun | None:
        return _detect_dataset(spark, dataset, store=store, rules=rules, since=since, until=until, options=options,
                               tenants=tenants)

    datasets = list(rules.datasets)
    if options.parallel_datasets == 1 or len(datasets) < 2:
        runs = [detect(dataset) for dataset in datasets]
    else:
        with ThreadPoolExecutor(max_workers=options.parallel_datasets, thread_name_prefix="citysoc-detect") as pool:
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
    alerts.extend(correlation_alerts(correlation_inputs, by_id, matched, hot_buckets_max=options.hot_buckets_max))
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
