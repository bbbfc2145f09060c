"""Rule evidence: example events that must (or must not) fire a rule, checked through Spark.

A rule `x.yml` has a sidecar `x.evidence.yaml`, or its evidence inline under `citysoc: {evidence: ...}`
(format in detection_rules/README.md). Every case runs in a tenant of its own, so all cases of all
rules are checked in one detection pass over one small lake and cannot influence each other.
Every case remembers the file and line it was written at, so a failure points there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from citysoc.errors import CitySocError
from citysoc.schema import ARROW_SCHEMA, FIELDS, JSON_FIELDS, flatten, nest, to_row
from correlator.engine.correlation import (
    correlation_bursts,
    correlation_input,
    correlation_windows,
    every_burst,
    referenced_correlations,
)
from correlator.engine.events import prepare_events
from correlator.engine.matching import match_rules
from correlator.engine.plan import plan_matching
from correlator.engine.session import INTERPRETED_EVALUATION, engine_options, session_conf
from correlator.engine.unions import union_all
from correlator.errors import EvidenceError, RuleLocation
from correlator.model import CompiledRule, CompiledRuleSet

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# (dataset or source kind, raw record: a CloudTrail object or a syslog line) -> (dataset, ECS document);
# supplied by the composition root from the collectors (`collectors.raw.parse_raw`).
RawParser = Callable[[str, Any], tuple[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class EvidenceEvent:
    ecs: Mapping[str, Any] | None = None
    raw: Any = None
    dataset: str | None = None
    repeat: int = 1
    every_seconds: float = 0.0


@dataclass(frozen=True)
class EvidenceCase:
    description: str
    expected: int  # detection: 1 (match: true) or 0; correlation: (at least) this many alerts
    events: tuple[EvidenceEvent, ...]
    kind: str  # "example" | "sequence"
    location: RuleLocation = field(default_factory=RuleLocation)  # where the case is written
    expected_max: int | None = -1  # at most this many (None: no upper bound; -1: exactly `expected`)

    @property
    def where(self) -> str:
        return str(self.location)

    @property
    def upper(self) -> int | None:
        return self.expected if self.expected_max == -1 else self.expected_max

    def holds(self, actual: int) -> bool:
        upper = self.upper
        return actual >= self.expected and (upper is None or actual <= upper)

    def describe_expectation(self) -> str:
        unit = "alert(s)" if self.kind == "sequence" else "match"
        if self.kind == "example":
            return "match" if self.expected else "no match"
        upper = self.upper
        if upper == self.expected:
            return f"exactly {self.expected} {unit}"
        if upper is None:
            return f"at least {self.expected} {unit}"
        return f"{self.expected}..{upper} {unit}"


@dataclass(frozen=True)
class EvidenceOutcome:
    rule_id: str
    case: EvidenceCase
    actual: int
    skipped: str | None = None  # why the case could not run (e.g. raw events without a parser)
    error: str | None = None  # the case's events could not be built (e.g. a raw line the collector refuses)

    @property
    def ok(self) -> bool:
        if self.error is not None:
            return False
        return self.skipped is not None or self.case.holds(self.actual)

    def explain(self) -> str:
        if self.error:
            return f"{self.case.where}: {self.case.description!r}: {self.error}"
        if self.skipped:
            return f"{self.case.where}: {self.case.description!r}: skipped ({self.skipped})"
        got = ("matched" if self.actual else "did not match") if self.case.kind == "example" \
            else f"{self.actual} alert(s)"
        return f"{self.case.where}: {self.case.description!r}: expected {self.case.describe_expectation()}, {got}"


def evidence_path(rule_path: Path) -> Path:
    return rule_path.with_name(rule_path.name.removesuffix(".yml") + ".evidence.yaml")


def _event(entry: Mapping[str, Any], where: str) -> EvidenceEvent:
    if not isinstance(entry, Mapping):
        raise EvidenceError(f"{where}: an event is a mapping with `ecs:` or `raw:`")
    if ("ecs" in entry) == ("raw" in entry):
        raise EvidenceError(f"{where}: give the event as exactly one of `ecs:` or `raw:`")
    if "ecs" in entry:
        _check_ecs(entry["ecs"], where)
    return EvidenceEvent(ecs=entry.get("ecs"), raw=entry.get("raw"), dataset=entry.get("dataset"),
                         repeat=int(entry.get("repeat", 1)), every_seconds=float(entry.get("every", 0)))


def _lines(node: yaml.Node | None, key: str) -> list[int]:
    """1-based start lines of the items of the sequence under `key` of a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _child(node: yaml.Node | None, *keys: str) -> yaml.Node | None:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for key_node, value in node.value
                     if isinstance(key_node, yaml.ScalarNode) and key_node.value == key), None)
    return node


def _alerts_expectation(value: Any, where: str) -> tuple[int, int | None]:
    """`alerts: 2` (exactly) or `alerts: {at_least: 1, at_most: 3}` / `{exactly: 2}`."""
    if isinstance(value, bool) or not isinstance(value, int | dict):
        raise EvidenceError(f"{where}: `alerts:` must be a number or {{at_least: N, at_most: M, exactly: N}}")
    if isinstance(value, int):
        return value, -1
    unknown = set(value) - {"at_least", "at_most", "exactly"}
    if unknown or not value:
        raise EvidenceError(f"{where}: `alerts:` takes at_least, at_most or exactly (not {', '.join(sorted(unknown))})")
    if "exactly" in value:
        return int(value["exactly"]), -1
    return int(value.get("at_least", 0)), (int(value["at_most"]) if "at_most" in value else None)


def _located(data: Mapping[str, Any], node: yaml.Node | None, key: str,
             source: str) -> Iterator[tuple[int, str, Any]]:
    """(line, `file:line: key[i]`, item) for each entry of the list under `key`."""
    lines = _lines(node, key)
    for index, item in enumerate(data.get(key) or []):
        line = lines[index] if index < len(lines) else 0
        yield line, f"{source}:{line}: {key}[{index}]", item


def _check_ecs(ecs: Any, where: str) -> None:
    """An `ecs:` event names only fields of the event schema, with values the schema can hold."""
    if not isinstance(ecs, Mapping):
        raise EvidenceError(f"{where}: `ecs:` is a mapping of ECS fields (dotted or nested)")
    try:
        names = [name for name, _ in flatten(ecs_document(ecs))]
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"{where}: `ecs:` has a value the event schema cannot hold: {exc}") from None
    unknown = sorted(name for name in names if name not in FIELDS)
    if unknown:
        raise EvidenceError(f"{where}: field(s) not in the event schema: {', '.join(unknown)} "
                            "(use the ECS names of citysoc/schema.py, e.g. source.ip, user.name)")


def parse_evidence(data: Mapping[str, Any], *, source: str, node: yaml.Node | None = None) -> list[EvidenceCase]:
    """Cases from an evidence mapping (`examples:` and/or `sequences:`); `node` gives line numbers."""
    if not isinstance(data, Mapping):
        raise EvidenceError(f"{source}: evidence is a mapping with `examples:` and/or `sequences:`")
    cases: list[EvidenceCase] = []
    for line, where, item in _located(data, node, "examples", source):
        if not isinstance(item, Mapping):
            raise EvidenceError(f"{where}: an example is a mapping with `match:` and `ecs:` or `raw:`")
        expected = item.get("match", item.get("expected_result"))  # Panther's ExpectedResult, snake-cased
        if not isinstance(expected, bool):
            raise EvidenceError(f"{where}: `match:` must be true or false")
        cases.append(EvidenceCase(str(item.get("description", "")), int(expected), (_event(item, where),),
                                  "example", RuleLocation(source, line)))
    for line, where, item in _located(data, node, "sequences", source):
        if not isinstance(item, Mapping):
            raise EvidenceError(f"{where}: a sequence is a mapping with `alerts:` and `events:`")
        low, high = _alerts_expectation(item.get("alerts"), where)
        events = tuple(_event(entry, f"{where}.events[{n}]") for n, entry in enumerate(item.get("events") or []))
        if not events:
            raise EvidenceError(f"{where}: a sequence needs `events:`")
        cases.append(EvidenceCase(str(item.get("description", "")), low, events, "sequence",
                                  RuleLocation(source, line), high))
    if not cases:
        raise EvidenceError(f"{source}: no `examples:` or `sequences:`")
    return cases


# libyaml's parser when PyYAML has it: the same nodes and marks, about ten times faster than PyYAML's own
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(path: Path) -> tuple[Any, yaml.Node | None]:
    """The file's data and its node tree (for line numbers), parsed once; a file that libyaml refuses is parsed
    again by PyYAML's own parser, whose error message (line, column, the line shown) is the one reported."""
    text = path.read_text(encoding="utf-8")
    try:
        try:
            node = yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        return (yaml.SafeLoader("").construct_document(node) if node is not None else None) or {}, node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise EvidenceError(f"{where}: not valid YAML: {exc}") from None


def load_evidence(path: Path) -> list[EvidenceCase]:
    """The cases of a sidecar evidence file."""
    data, node = _compose(path)
    return parse_evidence(data, source=str(path), node=node)


def evidence_for_rule(rule_path: Path) -> list[EvidenceCase] | None:
    """A rule's evidence: its sidecar file, else inline `citysoc: {evidence: ...}`; None when it has none."""
    sidecar = evidence_path(rule_path)
    if sidecar.is_file():
        return load_evidence(sidecar)
    data, node = _compose(rule_path)
    inline = (data.get("citysoc") or {}).get("evidence") if isinstance(data, Mapping) else None
    if inline is None:
        return None
    return parse_evidence(inline, source=str(rule_path), node=_child(node, "citysoc", "evidence"))


def ecs_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or dotted ECS -> nested; JSON fields given as mappings are serialised; times parsed."""
    flat: dict[str, Any] = {}
    for name, value in flatten(nest(dict(flatten(doc)))):
        if name in JSON_FIELDS and not isinstance(value, str) and value is not None:
            value = json.dumps(value, sort_keys=True)
        if name in ("@timestamp", "event.created", "event.ingested") and isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # YAML timestamps without an offset are UTC
        flat[name] = value
    return nest(flat)


@dataclass
class _Plan:
    docs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dataset -> docs (tenant inside)
    cases: list[tuple[str, CompiledRule, EvidenceCase]] = field(default_factory=list)  # tenant, rule, case
    not_run: list[EvidenceOutcome] = field(default_factory=list)


def _case_docs(rule: CompiledRule, case: EvidenceCase, tenant: str,
               raw_parser: RawParser | None) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for number, event in enumerate(case.events):
        dataset = event.dataset or rule.datasets[0]
        if event.raw is not None:
            if raw_parser is None:
                raise LookupError("raw events need the collectors' parser")
            dataset, parsed = raw_parser(event.dataset or dataset, event.raw)
            base = ecs_document(parsed)
        else:
            base = ecs_document(event.ecs or {})
            given = base.get("event", {}).get("dataset")
            if event.dataset is None and isinstance(given, str):  # an ECS event naming its dataset goes there
                dataset = given
        for copy in range(event.repeat):
            doc = ecs_document(base)
            offset = timedelta(seconds=event.every_seconds * copy)
            doc["@timestamp"] = doc.get("@timestamp", BASE_TIME) + offset
            doc.setdefault("event", {})
            doc["event"].setdefault("dataset", dataset)
            doc["event"]["id"] = f"{doc['event'].get('id', f'e{number}')}-{number}-{copy}"
            doc.setdefault("organization", {})["id"] = tenant
            docs.append((dataset, doc))
    return docs


def _plan(ruleset: CompiledRuleSet, cases: Mapping[str, Sequence[EvidenceCase]],
          raw_parser: RawParser | None) -> _Plan:
    plan = _Plan()
    for rule_id, rule_cases in sorted(cases.items()):
        rule = ruleset.by_id(rule_id)
        for case in rule_cases:
            tenant = f"ev-{len(plan.cases) + len(plan.not_run) + 1:05d}"
            try:
                docs = _case_docs(rule, case, tenant, raw_parser)
            except LookupError as exc:
                plan.not_run.append(EvidenceOutcome(rule_id, case, 0, skipped=str(exc)))
                continue
            except (CitySocError, ValueError, TypeError, KeyError) as exc:
                plan.not_run.append(EvidenceOutcome(rule_id, case, 0, error=str(exc)))
                continue
            for dataset, doc in docs:
                plan.docs.setdefault(dataset, []).append(doc)
            plan.cases.append((tenant, rule, case))
    return plan


_GROUP = "_evidence_group"  # which dataset's rules an evidence row is meant for (the plan's key)


@dataclass(frozen=True)
class PreparedEvidence:
    """Every case's events as one Arrow table (`prepare_evidence`): what the Spark pass reads, built without Spark,
    so that a command builds it while its session starts."""

    cases: Mapping[str, Sequence[EvidenceCase]]  # what it was prepared from (rule id -> cases)
    plan: _Plan
    table: pa.Table | None  # None: no case has events to run


def prepare_evidence(ruleset: CompiledRuleSet, cases: Mapping[str, Sequence[EvidenceCase]], *,
                     raw_parser: RawParser | None = None) -> PreparedEvidence:
    """The events of every case (rule id -> cases), each row carrying its case's tenant in `organization.id`
    and, in `_evidence_group`, the dataset whose rules it is for; no Spark needed."""
    plan = _plan(ruleset, cases, raw_parser)
    if not plan.docs:
        return PreparedEvidence(cases, plan, None)
    rows = [to_row(doc) for group in plan.docs.values() for doc in group]
    groups = [dataset for dataset, group in plan.docs.items() for _ in group]
    table = pa.Table.from_pylist(rows, schema=ARROW_SCHEMA).append_column(_GROUP, pa.array(groups, pa.string()))
    return PreparedEvidence(cases, plan, table)


def _events(spark: SparkSession, table: pa.Table) -> DataFrame:
    """Every evidence event as the engine reads events: one frame built in memory from one Arrow table (no
    store)."""
    return prepare_events(spark.createDataFrame(table), columns=ARROW_SCHEMA.names)


# Evidence is a few hundred rows against hundreds of rule expressions: generating and compiling Java for
# the projection costs far more than evaluating it. Spark's interpreted evaluation runs the same plan and
# the same expressions with the same semantics (Spark's own tests run both modes), about twice as fast here.
# A few hundred rows fit one task: one shuffle partition instead of the session's, for every shuffle.
# Adaptive execution re-plans after every shuffle and runs each shuffle stage as a Spark job of its own:
# for a few rows that is most of the work, so the pass plans once and runs each action as one job.
_INTERPRETED = {**INTERPRETED_EVALUATION, "spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}


def _unfiltered_windows(rule: CompiledRule, frame: DataFrame, moments: bool) -> DataFrame:
    return correlation_windows(frame, rule, prefilter=False, moments=moments)


def check_evidence(spark: SparkSession, ruleset: CompiledRuleSet, cases: Mapping[str, Sequence[EvidenceCase]], *,
                   raw_parser: RawParser | None = None,
                   prepared: PreparedEvidence | None = None) -> list[EvidenceOutcome]:
    """Run every case (rule id -> cases) through the real Spark evaluation; one outcome per case.

    A case whose events cannot be built (a raw line the collector refuses, a field not in the event
    schema) fails with that reason; raw events without a `raw_parser` are reported skipped. `prepared`:
    the cases' events built beforehand (`prepare_evidence` of the same `cases`), else built here.
    """
    if prepared is None or prepared.cases is not cases:
        prepared = prepare_evidence(ruleset, cases, raw_parser=raw_parser)
    with session_conf(spark, _INTERPRETED):
        return _check_evidence(spark, ruleset, prepared)


def _check_evidence(spark: SparkSession, ruleset: CompiledRuleSet, prepared: PreparedEvidence) -> list[EvidenceOutcome]:
    plan = prepared.plan
    options = engine_options(spark)
    matched: dict[tuple[str, str], int] = {}
    correlation_alerts: dict[tuple[str, str], int] = {}
    wanted = {rule.id for _, rule, _ in plan.cases}
    every_correlation = {r.id: r for r in ruleset.correlations()}
    wanted |= {chained for rule_id in list(wanted) if rule_id in every_correlation
               for chained in referenced_correlations(every_correlation[rule_id], every_correlation)}
    correlations = [r for r in ruleset.correlations() if r.id in wanted]
    runnable = [dataset for dataset in ruleset.datasets if dataset in plan.docs and ruleset.detections(dataset)]
    combined: dict[str, DataFrame] = {}
    if runnable and prepared.table is not None:
        events = _events(spark, prepared.table)
        parts = [match_rules(events.filter(F.col(_GROUP) == dataset).drop(_GROUP),
                             plan_matching(ruleset.detections(dataset), options)) for dataset in runnable]
        # every dataset's matches in one frame, materialised once (one Spark job), lineage cut: the
        # correlations' plans start from these rows, not from the match plans with every rule's expression
        # that Spark would otherwise analyse again for each. In one partition: Spark then knows every
        # (tenant, group) is in one place, and the correlations' windows and aggregations need no shuffle.
        matches = union_all(parts).coalesce(1).localCheckpoint(eager=True)
        for row in matches.select("_tenant", "_rule_id").collect():
            key = (row["_tenant"], row["_rule_id"])
            matched[key] = matched.get(key, 0) + 1
        combined = {rule.id: correlation_input(matches, rule) for rule in correlations
                    if set(rule.datasets).intersection(runnable)}
    # a few rows per case: the bucket pre-filter (which only drops matches no window can use) would cost
    # more shuffles than it saves; every correlation's bursts come back in one Spark job
    bursts = correlation_bursts(combined, every_correlation, windows=_unfiltered_windows, one_partition=True)
    if (burst_rows := every_burst(bursts, "_tenant")) is not None:
        for row in burst_rows.collect():
            key = (row["_tenant"], row["_rule_id"])
            correlation_alerts[key] = correlation_alerts.get(key, 0) + 1
    outcomes = list(plan.not_run)
    for tenant, rule, case in plan.cases:
        if rule.kind == "correlation":
            actual = correlation_alerts.get((tenant, rule.id), 0)
        else:
            actual = int(matched.get((tenant, rule.id), 0) > 0)
        outcomes.append(EvidenceOutcome(rule.id, case, actual))
    return outcomes
