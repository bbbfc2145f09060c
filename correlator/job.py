"""The detection job: read each dataset once, evaluate every rule in one projection, raise alerts.

Typed `DataFrame -> DataFrame` steps (`prepare_events`, `match_rules`, `detection_alert_rows`, and the
correlation steps in `correlator.correlation`); `run_detection` wires read -> transform -> write.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.schema import spark_schema
from correlator.alerts import correlation_alert, detection_alert, store_new_alerts
from correlator.compiler import CompiledRule, CompiledRuleSet, UnsupportedRule
from correlator.correlation import ENTITY_COLUMNS, correlation_input, correlation_windows

log = structlog.get_logger(__name__)

RULES_PER_PROJECTION = 200  # keeps generated code inside the JVM's 64 KB method limit


@dataclass
class DetectionResult:
    events: dict[str, int] = field(default_factory=dict)  # dataset -> events read (after de-duplication)
    matches: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> rule id -> matched events
    alerts_by_rule: dict[str, int] = field(default_factory=dict)  # rule id -> alerts raised in this run
    new_alerts: list[dict[str, Any]] = field(default_factory=list)  # not stored before this run
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every alert raised in this run
    unsupported: list[UnsupportedRule] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("since/until must be timezone-aware datetimes (e.g. datetime(..., tzinfo=UTC))")
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def prepare_events(events: DataFrame, *, since: datetime | None = None, until: datetime | None = None) -> DataFrame:
    """Add `_tenant`, `_event_id`, `_ts_us`, `_dataset`; keep [since, until); drop at-least-once duplicates."""
    if "day" in events.columns:  # partition pruning before the row filter
        if since is not None:
            events = events.filter(F.col("day") >= F.lit(since.date().isoformat()))
        if until is not None:
            events = events.filter(F.col("day") <= F.lit(until.date().isoformat()))
    tenant = F.col("organization.id")
    if "tenant" in events.columns:
        tenant = F.coalesce(tenant, F.col("tenant").cast("string"))
    dataset = F.col("event.dataset")
    if "dataset" in events.columns:
        dataset = F.coalesce(dataset, F.col("dataset").cast("string"))
    prepared = (
        events.withColumn("_tenant", tenant)
        .withColumn("_event_id", F.col("event.id"))
        .withColumn("_ts_us", F.unix_micros(F.col("`@timestamp`")))
        .withColumn("_dataset", dataset)
        .filter(F.col("_tenant").isNotNull() & F.col("_event_id").isNotNull() & F.col("_ts_us").isNotNull())
    )
    if since is not None:
        prepared = prepared.filter(F.col("_ts_us") >= F.lit(_micros(since)))
    if until is not None:
        prepared = prepared.filter(F.col("_ts_us") < F.lit(_micros(until)))
    prepared = prepared.dropDuplicates(["_tenant", "_event_id"])
    for name, column in ENTITY_COLUMNS.items():
        prepared = prepared.withColumn(column, F.col(name))
    return prepared


def read_events(spark: SparkSession, events_dir: Path, dataset: str, *, since: datetime | None = None,
                until: datetime | None = None) -> DataFrame | None:
    """One dataset of the lake, prepared; None when the dataset holds no file."""
    root = events_dir / f"dataset={dataset}"
    if not root.is_dir() or not any(root.rglob("*.parquet")):
        return None
    frame = spark.read.schema(spark_schema()).option("basePath", str(events_dir)).parquet(str(root))
    return prepare_events(frame, since=since, until=until)


def match_rules(events: DataFrame, rules: Sequence[CompiledRule], *,
                chunk_size: int = RULES_PER_PROJECTION) -> DataFrame:
    """One row per (event, matching rule): the event's columns plus `_rule_id`."""
    if not rules:
        raise ValueError("match_rules needs at least one rule")
    parts: list[DataFrame] = []
    for start in range(0, len(rules), chunk_size):
        chunk = rules[start:start + chunk_size]
        hits = F.array(*(F.when(F.expr(rule.expression), F.lit(rule.id)) for rule in chunk))
        parts.append(events.select("*", F.explode(F.array_compact(hits)).alias("_rule_id")))
    matched = parts[0]
    for part in parts[1:]:
        matched = matched.unionByName(part)
    return matched


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


def _entities_of(row: Any, *, lists: bool) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, column in ENTITY_COLUMNS.items():
        value = row[column]
        values[name] = [v for v in value if v] if lists else ([value] if value else [])
    return values


def run_detection(spark: SparkSession, *, events_dir: Path, alerts_dir: Path, rules: CompiledRuleSet,
                  since: datetime | None = None, until: datetime | None = None) -> DetectionResult:
    """Detect over the lake in [since, until), store alerts not stored before, report what happened."""
    result = DetectionResult(unsupported=list(rules.unsupported))
    by_id = {rule.id: rule for rule in rules.rules}
    alerts: list[dict[str, Any]] = []
    correlation_inputs: dict[str, list[DataFrame]] = {}
    cached: list[DataFrame] = []
    for dataset in rules.datasets:
        started = time.perf_counter()
        detections = rules.detections(dataset)
        events = read_events(spark, events_dir, dataset, since=since, until=until)
        if events is None or not detections:
            continue
        events = events.persist()
        cached.append(events)
        result.events[dataset] = events.count()
        matches = match_rules(events, detections).persist()
        cached.append(matches)
        result.matches[dataset] = {row["_rule_id"]: row["count"] for row in
                                   matches.groupBy("_rule_id").count().collect()}
        for row in detection_alert_rows(matches, detections).collect():
            alerts.append(detection_alert(
                by_id[row["_rule_id"]], tenant=row["_tenant"], dataset=row["_dataset"], event_id=row["_event_id"],
                ts_us=row["_ts_us"], entities=_entities_of(row, lists=False), group_key=row["_group_key"]))
        for correlation in rules.correlations():
            if dataset in correlation.datasets:
                correlation_inputs.setdefault(correlation.id, []).append(correlation_input(matches, correlation))
        result.timings[f"dataset:{dataset}"] = time.perf_counter() - started
        log.debug("dataset evaluated", dataset=dataset, events=result.events[dataset], rules=len(detections))
    started = time.perf_counter()
    for rule_id, inputs in correlation_inputs.items():
        rule = by_id[rule_id]
        combined = inputs[0]
        for extra in inputs[1:]:
            combined = combined.unionByName(extra)
        for row in correlation_windows(combined, rule).collect():
            alerts.append(correlation_alert(
                rule, tenant=row["_tenant"], datasets=row["_datasets"], group_key=row["_group_key"],
                window_start_us=row["_burst_start"], window_end_us=row["_burst_end"],
                event_ids=[event["_event_id"] for event in row["_events"]], count=row["_count"],
                entities=_entities_of(row, lists=True)))
    result.timings["correlations"] = time.perf_counter() - started
    for frame in cached:
        frame.unpersist()
    started = time.perf_counter()
    alerts.sort(key=lambda a: (a["@timestamp"], a["id"]))
    result.alerts = alerts
    for alert in alerts:
        result.alerts_by_rule[alert["rule"]["id"]] = result.alerts_by_rule.get(alert["rule"]["id"], 0) + 1
    result.new_alerts = store_new_alerts(alerts_dir, alerts)
    result.timings["store"] = time.perf_counter() - started
    log.debug("detection done", alerts=len(alerts), new_alerts=len(result.new_alerts))
    return result
