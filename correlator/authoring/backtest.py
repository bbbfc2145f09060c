"""`soc rules backtest`: how many alerts each rule would have raised over stored or given events.

The same steps as the detection job (`read_events` -> `match_rules` -> `detection_alert_rows`, and the
correlation windows), counted instead of stored: nothing is written to the alert store or sent to the
case API. Expectations (`at_least` / `at_most` / `exactly`) come from a rule's evidence file
(`backtest: {at_most: 5}`) or the command line (`RULE_ID:at_most=5`, `*` for every rule) and are
checked against the alert counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.store import EventStore
from correlator.authoring.evidence import evidence_path
from correlator.engine.correlation import correlation_bursts, correlation_input, correlation_windows, every_burst
from correlator.engine.detection import detection_alert_rows, read_events
from correlator.engine.matching import match_rules
from correlator.engine.options import EngineOptions
from correlator.engine.plan import plan_matching
from correlator.engine.session import INTERPRETED_EVALUATION, engine_options, session_conf
from correlator.engine.unions import union_all
from correlator.errors import BacktestError
from correlator.model import CompiledRule, CompiledRuleSet

_EXPECT = re.compile(r"^(?P<rule>[^:]+):(?P<op>at_least|at_most|exactly)=(?P<n>\d+)$")


@dataclass(frozen=True)
class BacktestExpectation:
    rule: str  # rule id, or "*" for every rule
    op: str  # at_least | at_most | exactly
    count: int
    where: str  # "--expect" or the evidence file

    def holds(self, alerts: int) -> bool:
        if self.op == "at_least":
            return alerts >= self.count
        if self.op == "at_most":
            return alerts <= self.count
        return alerts == self.count

    def __str__(self) -> str:
        return f"{self.op.replace('_', ' ')} {self.count}"


def parse_expectation(text: str) -> BacktestExpectation:
    match = _EXPECT.match(text.strip())
    if not match:
        raise BacktestError(f"--expect {text!r}: write RULE_ID:at_most=N, RULE_ID:at_least=N or RULE_ID:exactly=N "
                            "(RULE_ID may be * for every rule)")
    return BacktestExpectation(match["rule"], match["op"], int(match["n"]), "--expect")


def expectations_from_evidence(ruleset: CompiledRuleSet) -> list[BacktestExpectation]:
    """`backtest: {at_most: N, ...}` in each rule's evidence file."""
    found: list[BacktestExpectation] = []
    for rule in ruleset.rules:
        if not rule.path:
            continue
        sidecar = evidence_path(Path(rule.path))
        if not sidecar.is_file():
            continue
        declared = (yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}).get("backtest")
        if declared is None:
            continue
        if not isinstance(declared, Mapping) or not declared or set(declared) - {"at_least", "at_most", "exactly"}:
            raise BacktestError(f"{sidecar}: `backtest:` takes at_least, at_most and/or exactly, e.g. {{at_most: 5}}")
        found += [BacktestExpectation(rule.id, op, int(n), str(sidecar)) for op, n in declared.items()]
    return found


@dataclass
class BacktestResult:
    events: dict[str, int] = field(default_factory=dict)  # dataset -> events scanned
    # rule id -> events its detection matched; for a correlation, the matches of its referenced rules (for a
    # chained one, the alerts of the correlations it refers to) in the scanned time range
    matches: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)  # rule id -> alerts it would raise
    # rule id -> events behind those alerts: a detection alert has one; a correlation alert the matches
    # inside its window (capped nowhere: counted, not listed)
    behind: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, set[str]] = field(default_factory=dict)  # rule id -> tenants alerted

    def violations(self, ruleset: CompiledRuleSet, expectations: Iterable[BacktestExpectation]) \
            -> list[tuple[str, BacktestExpectation, int]]:
        broken = []
        for expectation in expectations:
            rule_ids = [r.id for r in ruleset.rules] if expectation.rule == "*" else [expectation.rule]
            for rule_id in rule_ids:
                alerts = self.alerts.get(rule_id, 0)
                if not expectation.holds(alerts):
                    broken.append((rule_id, expectation, alerts))
        return broken


# Up to this many events, a dataset's rules (and, up to it in all, the correlations) are evaluated by Spark's
# interpreted expressions (`INTERPRETED_EVALUATION`): the demo lake's few thousand events per dataset against
# every rule's expression cost more in generating and compiling Java than in evaluating. Above, code generation.
INTERPRETED_MAX_EVENTS = 50_000
# Adaptive execution runs each shuffle stage as a Spark job of its own and re-plans after it; a backtest's
# aggregations are small (counts per rule), so it plans once.
_BACKTEST_CONF = {"spark.sql.adaptive.enabled": "false"}


def _evaluation(events: int) -> dict[str, str]:
    return INTERPRETED_EVALUATION if events <= INTERPRETED_MAX_EVENTS else {}


@dataclass
class _DatasetCounts:
    """One dataset's part of a backtest, merged into the `BacktestResult` in dataset order."""

    dataset: str
    events: int
    counts: BacktestResult
    correlation_inputs: dict[str, DataFrame]
    cached: list[DataFrame]


def run_backtest(spark: SparkSession, ruleset: CompiledRuleSet, *, store: EventStore, tenant: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> BacktestResult:
    """Every rule of `ruleset` over the store's events in [since, until) (of `tenant` only, when given).

    When the store holds at most `INTERPRETED_MAX_EVENTS` events of each dataset (`EventStore.count`, an upper
    bound of what is read), every dataset is read, cached and matched interpreted, `parallel_datasets` at
    once (one dataset's driver work overlaps another's scan); otherwise one after the other, each in the
    evaluation its own event count calls for."""
    options = engine_options(spark)
    result = BacktestResult()
    datasets = [dataset for dataset in ruleset.datasets if ruleset.detections(dataset)]
    tenants = None if tenant is None else [tenant]

    def counted(dataset: str) -> _DatasetCounts | None:
        return _count_dataset(spark, ruleset, dataset, store=store, tenant=tenant, since=since, until=until,
                              options=options)

    with session_conf(spark, _BACKTEST_CONF):
        small = all(store.count(dataset, since=since, until=until, tenants=tenants) <= INTERPRETED_MAX_EVENTS
                    for dataset in datasets)
        if small and options.parallel_datasets > 1 and len(datasets) > 1:
            with session_conf(spark, INTERPRETED_EVALUATION), ThreadPoolExecutor(
                    max_workers=options.parallel_datasets, thread_name_prefix="citysoc-backtest") as pool:
                parts = list(pool.map(counted, datasets))
        else:
            parts = [counted(dataset) for dataset in datasets]
        correlation_inputs: dict[str, list[DataFrame]] = {}
        cached: list[DataFrame] = []
        for part in parts:
            if part is None:
                continue
            result.events[part.dataset] = part.events
            _merge(result, part.counts)
            for rule_id, frame in part.correlation_inputs.items():
                correlation_inputs.setdefault(rule_id, []).append(frame)
            cached += part.cached
        combined = {rule_id: union_all(inputs) for rule_id, inputs in correlation_inputs.items()}
        with session_conf(spark, _evaluation(sum(result.events.values()))):
            _count_correlations(result, ruleset, combined)
    for frame in cached:
        frame.unpersist()
    return result


def _count_dataset(spark: SparkSession, ruleset: CompiledRuleSet, dataset: str, *, store: EventStore,
                   tenant: str | None, since: datetime | None, until: datetime | None,
                   options: EngineOptions) -> _DatasetCounts | None:
    """One dataset's events read, cached and counted, its detections' matches and alerts counted, and the
    inputs of the correlations it feeds; None when the store has none of its events."""
    events = read_events(spark, store, dataset, since=since, until=until,
                         tenants=None if tenant is None else [tenant], options=options)
    if events is None:
        return None
    if tenant is not None:  # rows whose own organization.id says otherwise
        events = events.filter(F.col("_tenant") == F.lit(tenant))
    events = events.persist()
    total = events.count()
    counts = BacktestResult()
    detections = ruleset.detections(dataset)
    with session_conf(spark, _evaluation(total)):
        matches = match_rules(events, plan_matching(detections, options)).persist()
        _count_detections(counts, matches, detections)
    inputs = {correlation.id: correlation_input(matches, correlation)
              for correlation in ruleset.correlations() if dataset in correlation.datasets}
    return _DatasetCounts(dataset, total, counts, inputs, [events, matches])


def _merge(result: BacktestResult, counts: BacktestResult) -> None:
    for rule_id, matched in counts.matches.items():
        result.matches[rule_id] = result.matches.get(rule_id, 0) + matched
    for rule_id, alerts in counts.alerts.items():
        result.alerts[rule_id] = result.alerts.get(rule_id, 0) + alerts
        result.behind[rule_id] = result.alerts[rule_id]  # one event an alert
    for rule_id, tenants in counts.tenants.items():
        result.tenants.setdefault(rule_id, set()).update(tenants)


def _count_detections(result: BacktestResult, matches: DataFrame, detections: Sequence[CompiledRule]) -> None:
    for row in matches.groupBy("_rule_id").count().collect():
        result.matches[row["_rule_id"]] = result.matches.get(row["_rule_id"], 0) + row["count"]
    alert_rows = detection_alert_rows(matches, detections)
    for row in alert_rows.groupBy("_rule_id").agg(F.count("*").alias("n"),
                                                  F.collect_set("_tenant").alias("t")).collect():
        result.alerts[row["_rule_id"]] = result.alerts.get(row["_rule_id"], 0) + row["n"]
        result.behind[row["_rule_id"]] = result.alerts[row["_rule_id"]]  # one event an alert
        result.tenants.setdefault(row["_rule_id"], set()).update(row["t"])


def _count_correlations(result: BacktestResult, ruleset: CompiledRuleSet, combined: Mapping[str, DataFrame]) -> None:
    by_id = {rule.id: rule for rule in ruleset.rules}
    # one Spark job for every correlation's input count, one for every correlation's bursts
    if combined:
        counted = union_all([frame.select(F.lit(rule_id).alias("_rule_id"))
                             for rule_id, frame in combined.items()])
        result.matches.update({rule_id: 0 for rule_id in combined})
        for row in counted.groupBy("_rule_id").count().collect():
            result.matches[row["_rule_id"]] = row["count"]
    bursts = correlation_bursts(combined, by_id, windows=lambda rule, frame, moments: correlation_windows(
        frame, rule, prefilter=_worth_prefiltering(rule, result.matches), moments=moments))
    for rule_id in bursts:
        result.alerts[rule_id], result.behind[rule_id], result.tenants[rule_id] = 0, 0, set()
    if (burst_rows := every_burst(bursts, "_tenant", "_count")) is not None:
        for row in burst_rows.collect():
            rule_id = row["_rule_id"]
            result.alerts[rule_id] += 1
            result.behind[rule_id] += row["_count"]
            result.tenants[rule_id].add(row["_tenant"])
    for rule in ruleset.correlations():  # a chained correlation is fed by the alerts of those it refers to
        if rule.id not in combined and rule.correlation is not None:
            result.matches[rule.id] = sum(result.alerts.get(ref, 0) for ref in rule.correlation.rule_ids)


# Below this many matches of its rules, a correlation windows them all: the bucket pre-filter (three
# shuffles, each a Spark job of its own under adaptive execution) costs more than sorting so few rows.
PREFILTER_MIN_MATCHES = 100_000


def _worth_prefiltering(rule: CompiledRule, matches: Mapping[str, int]) -> bool:
    """Whether `rule`'s windows should pre-filter its inputs (`correlation_windows(prefilter=...)`), given
    each rule's matched events: only for many matches (a chained rule's inputs are alerts: few)."""
    if rule.correlation is None:
        return False
    return sum(matches.get(rule_id, 0) for rule_id in rule.correlation.base_rule_ids) >= PREFILTER_MIN_MATCHES


@dataclass(frozen=True)
class RuleRow:
    """One rule's line of the report."""

    rule_id: str
    title: str
    kind: str  # "detection" | "correlation"
    matched: int  # events its detection matched (correlation: matches of the rules it refers to)
    alerts: int
    behind: int  # events behind its alerts

    def as_dict(self) -> dict[str, object]:
        return {"rule_id": self.rule_id, "title": self.title, "kind": self.kind, "matched_events": self.matched,
                "alerts": self.alerts, "events_behind_alerts": self.behind}


def ranked(ruleset: CompiledRuleSet, result: BacktestResult) -> Sequence[RuleRow]:
    """A row for every rule, noisiest first."""
    rows = [RuleRow(rule.id, rule.title, rule.kind,
                    result.matches.get(rule.id, 0), result.alerts.get(rule.id, 0), result.behind.get(rule.id, 0))
            for rule in ruleset.rules]
    return sorted(rows, key=lambda row: (-row.alerts, -row.matched, row.title))
