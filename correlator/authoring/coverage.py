"""`soc rules coverage`: what the active rule set covers, and what can fire for each tenant.

Per rule: its ATT&CK tactics and techniques (from its tags, named from the offline ATT&CK data) and
the datasets it reads. Per tenant: a rule can fire when the tenant has onboarded a source feeding at
least one of the rule's datasets (a correlation: one of its base rules' datasets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from correlator.authoring.attack import TECHNIQUE_TAG, AttackData
from correlator.model import CompiledRule, CompiledRuleSet


@dataclass
class Coverage:
    rules: int = 0
    tactics: dict[str, list[str]] = field(default_factory=dict)  # tactic shortname -> rule ids
    techniques: dict[str, list[str]] = field(default_factory=dict)  # T-id -> rule ids
    datasets: dict[str, list[str]] = field(default_factory=dict)  # dataset -> rule ids
    not_runnable: int = 0
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)  # tenant -> {datasets, can_fire, cannot_fire}


def _split(rule: CompiledRule) -> tuple[list[str], list[str]]:
    tactics, techniques = [], []
    for tag in rule.tags:
        namespace, _, name = tag.partition(".")
        if namespace != "attack":
            continue
        if TECHNIQUE_TAG.match(name):
            techniques.append(name.upper())
        elif not name[:1].isdigit() and not (len(name) == 5 and name[0] in "gsmc" and name[1:].isdigit()):
            tactics.append(name)
    return tactics, techniques


def rule_coverage(ruleset: CompiledRuleSet) -> Coverage:
    coverage = Coverage(rules=len(ruleset.rules), not_runnable=len(ruleset.unsupported))
    for rule in ruleset.rules:
        tactics, techniques = _split(rule)
        for tactic in tactics:
            coverage.tactics.setdefault(tactic, []).append(rule.id)
        for technique in techniques:
            coverage.techniques.setdefault(technique, []).append(rule.id)
        for dataset in rule.datasets:
            coverage.datasets.setdefault(dataset, []).append(rule.id)
    return coverage


def tenant_coverage(coverage: Coverage, ruleset: CompiledRuleSet, tenants: Iterable[str],
                    sources: Sequence[Mapping[str, Any]]) -> None:
    """Fill `coverage.tenants` from the tenants' onboarded sources (as the case API lists them)."""
    for tenant in sorted(set(tenants)):
        datasets = sorted({d for s in sources if s["tenant_id"] == tenant for d in s.get("datasets") or []})
        alerting = [rule for rule in ruleset.rules if rule.generate]
        can = [rule.id for rule in alerting if set(rule.datasets) & set(datasets)]
        coverage.tenants[tenant] = {
            "sources": sorted(s["name"] for s in sources if s["tenant_id"] == tenant),
            "datasets": datasets,
            "can_fire": can,
            "cannot_fire": [rule.id for rule in alerting if rule.id not in can],
        }


def as_json(coverage: Coverage, ruleset: CompiledRuleSet, attack: AttackData) -> list[dict[str, Any]]:
    """One object per line: rules, tactics, techniques, datasets, tenants."""
    titles = {rule.id: rule.title for rule in ruleset.rules}
    lines: list[dict[str, Any]] = [{"type": "summary", "rules": coverage.rules, "not_runnable": coverage.not_runnable,
                                    "attack_version": attack.version}]
    for tactic, ids in sorted(coverage.tactics.items()):
        known = attack.tactics.get(tactic)
        lines.append({"type": "tactic", "tactic": tactic, "name": known.name if known else None, "rules": ids})
    for technique, ids in sorted(coverage.techniques.items()):
        known_technique = attack.techniques.get(technique)
        lines.append({"type": "technique", "technique": technique,
                      "name": known_technique.name if known_technique else None, "rules": ids})
    for dataset, ids in sorted(coverage.datasets.items()):
        lines.append({"type": "dataset", "dataset": dataset, "rules": ids})
    for tenant, info in coverage.tenants.items():
        lines.append({"type": "tenant", "tenant": tenant, **info,
                      "can_fire_titles": [titles[i] for i in info["can_fire"]]})
    return lines
