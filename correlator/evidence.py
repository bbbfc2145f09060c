"""Rule evidence: example events that must (or must not) fire a rule, checked through Spark.

A rule `x.yml` has a sidecar `x.evidence.yaml` (format in detection_rules/README.md). Every case runs
in a tenant of its own, so all cases of all rules are checked in one detection pass over one small lake
and cannot influence each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from citysoc.errors import CitySocError
from citysoc.schema import JSON_FIELDS, flatten, nest
from citysoc.store.parquet import ParquetEventStore
from correlator.compiler import CompiledRule, CompiledRuleSet
from correlator.correlation import correlation_input, correlation_windows
from correlator.job import match_rules, read_events

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# raw record (CloudTrail object or syslog line) + dataset -> ECS document; supplied by the collectors.
RawParser = Callable[[str, Any], Mapping[str, Any]]


class EvidenceError(CitySocError):
    """An evidence file is malformed; the message names the file and the case."""


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
    expected: int  # detection: 1 (match: true) or 0; correlation: number of alerts
    events: tuple[EvidenceEvent, ...]
    kind: str  # "example" | "sequence"


@dataclass(frozen=True)
class EvidenceOutcome:
    rule_id: str
    case: EvidenceCase
    actual: int
    skipped: str | None = None  # why the case could not run (e.g. raw events without a parser)

    @property
    def ok(self) -> bool:
        return self.skipped is not None or self.actual == self.case.expected


def evidence_path(rule_path: Path) -> Path:
    return rule_path.with_name(rule_path.name.removesuffix(".yml") + ".evidence.yaml")


def _event(entry: Mapping[str, Any], where: str) -> EvidenceEvent:
    if ("ecs" in entry) == ("raw" in entry):
        raise EvidenceError(f"{where}: give the event as exactly one of `ecs:` or `raw:`")
    return EvidenceEvent(ecs=entry.get("ecs"), raw=entry.get("raw"), dataset=entry.get("dataset"),
                         repeat=int(entry.get("repeat", 1)), every_seconds=float(entry.get("every", 0)))


def load_evidence(path: Path) -> list[EvidenceCase]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cases: list[EvidenceCase] = []
    for index, item in enumerate(data.get("examples") or []):
        where = f"{path}: examples[{index}]"
        if not isinstance(item.get("match"), bool):
            raise EvidenceError(f"{where}: `match:` must be true or false")
        cases.append(EvidenceCase(item.get("description", ""), int(item["match"]), (_event(item, where),), "example"))
    for index, item in enumerate(data.get("sequences") or []):
        where = f"{path}: sequences[{index}]"
        if not isinstance(item.get("alerts"), int):
            raise EvidenceError(f"{where}: `alerts:` must be the expected number of alerts")
        events = tuple(_event(entry, f"{where}.events[{n}]") for n, entry in enumerate(item.get("events") or []))
        cases.append(EvidenceCase(item.get("description", ""), item["alerts"], events, "sequence"))
    if not cases:
        raise EvidenceError(f"{path}: no `examples:` or `sequences:`")
    return cases


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
    docs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # (tenant, dataset) -> docs
    cases: list[tuple[str, CompiledRule, EvidenceCase]] = field(default_factory=list)  # tenant, rule, case
    skipped: list[EvidenceOutcome] = field(default_factory=list)


def _plan(ruleset: CompiledRuleSet, cases: Mapping[str, Sequence[EvidenceCase]],
          raw_parser: RawParser | None) -> _Plan:
    plan = _Plan()
    for rule_id, rule_cases in sorted(cases.items()):
        rule = ruleset.by_id(rule_id)
        for case in rule_cases:
            tenant = f"ev-{len(plan.cases) + len(plan.skipped) + 1:04d}"
            docs: list[tuple[str, dict[str, Any]]] = []
            try:
                for number, event in enumerate(case.events):
                    dataset = event.dataset or rule.datasets[0]
                    if event.raw is not None:
                        if raw_parser is None:
                            raise LookupError("raw events need the collectors' parser")
                        base = dict(raw_parser(dataset, event.raw))
                    else:
                        base = ecs_document(event.ecs or {})
                    for copy in range(event.repeat):
                        doc = ecs_document(base)
                        offset = timedelta(seconds=event.every_seconds * copy)
                        doc["@timestamp"] = doc.get("@timestamp", BASE_TIME) + offset
                        doc.setdefault("event", {})
                        doc["event"].setdefault("dataset", dataset)
                        doc["event"]["id"] = f"{doc['event'].get('id', f'e{number}')}-{copy}"
                        doc.setdefault("organization", {})["id"] = tenant
                        docs.append((dataset, doc))
            except LookupError as exc:
                plan.skipped.append(EvidenceOutcome(rule_id, case, 0, skipped=str(exc)))
                continue
            for dataset, doc in docs:
                plan.docs.setdefault((tenant, dataset), []).append(doc)
            plan.cases.append((tenant, rule, case))
    return plan


def check_evidence(spark: Any, ruleset: CompiledRuleSet, cases: Mapping[str, Sequence[EvidenceCase]], *,
                   workdir: Path, raw_parser: RawParser | None = None) -> list[EvidenceOutcome]:
    """Run every case (rule id -> cases) through the real Spark evaluation; one outcome per case."""
    plan = _plan(ruleset, cases, raw_parser)
    store = ParquetEventStore(workdir / "events")
    for (tenant, dataset), docs in plan.docs.items():
        store.write(tenant=tenant, dataset=dataset, events=docs)
    matched: dict[tuple[str, str], int] = {}
    correlation_alerts: dict[tuple[str, str], int] = {}
    wanted = {rule.id for _, rule, _ in plan.cases}
    correlations = [r for r in ruleset.correlations() if r.id in wanted]
    inputs: dict[str, list[Any]] = {}
    cached = []
    for dataset in ruleset.datasets:
        events = read_events(spark, store.events_dir, dataset)
        if events is None:
            continue
        matches = match_rules(events, ruleset.detections(dataset)).persist()
        cached.append(matches)
        for row in matches.groupBy("_tenant", "_rule_id").count().collect():
            matched[(row["_tenant"], row["_rule_id"])] = row["count"]
        for rule in correlations:
            if dataset in rule.datasets:
                inputs.setdefault(rule.id, []).append(correlation_input(matches, rule))
    for rule in correlations:
        frames = inputs.get(rule.id, [])
        if not frames:
            continue
        combined = frames[0]
        for extra in frames[1:]:
            combined = combined.unionByName(extra)
        for row in correlation_windows(combined, rule).collect():
            key = (row["_tenant"], rule.id)
            correlation_alerts[key] = correlation_alerts.get(key, 0) + 1
    for frame in cached:
        frame.unpersist()
    outcomes = list(plan.skipped)
    for tenant, rule, case in plan.cases:
        if rule.kind == "correlation":
            actual = correlation_alerts.get((tenant, rule.id), 0)
        else:
            actual = int(matched.get((tenant, rule.id), 0) > 0)
        outcomes.append(EvidenceOutcome(rule.id, case, actual))
    return outcomes
