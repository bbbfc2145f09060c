"""Compiled rules: what the compiler produces and the engine and the rule tooling consume.

Plain data, no Spark and no pySigma: a detection rule is a `Condition` over one event row (the SQL
with its case-folded tests left open, `correlator.sql`) plus what the compiler learnt from its Sigma
tree (its `RouteKey`, the literals it needs); a correlation rule is a `CorrelationSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from correlator.errors import RuleLocation
from correlator.sql import Condition

RuleKind = Literal["detection", "correlation"]
# Entity fields, in the order the default group key picks the first present one.
ENTITY_FIELDS: tuple[str, ...] = ("user.name", "source.ip", "host.name", "cloud.account.id")


@dataclass(frozen=True)
class RouteKey:
    """The rule can only match an event whose lower-cased `field` is one of `values`."""

    field: str
    values: frozenset[str]


@dataclass(frozen=True)
class CorrelationSpec:
    """What a correlation rule counts, per group of base-rule matches, within a time span."""

    type: str  # "event_count" | "value_count"
    rule_ids: tuple[str, ...]  # base detection rules
    group_by: tuple[str, ...]  # field names as the rule writes them (used in the group key)
    group_exprs: tuple[str, ...]  # Spark SQL for each group-by field
    timespan_seconds: int
    op: str  # "gte", "gt", "lte", "lt", "eq", "neq"
    count: int
    value_field: str | None = None  # value_count: the field whose distinct values are counted
    value_expr: str | None = None


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run: a condition over one event row (detection) or a correlation spec."""

    id: str
    title: str
    level: str | None
    tags: tuple[str, ...]
    datasets: tuple[str, ...]
    condition: Condition  # empty for correlations
    location: RuleLocation
    kind: RuleKind
    name: str | None = None
    generate: bool = True  # False: a correlation's base rule that raises no alert of its own
    group_by: tuple[tuple[str, str], ...] = ()  # (field name, Spark SQL) overriding the default group key
    correlation: CorrelationSpec | None = None
    routing: RouteKey | None = None  # the rule can only match events with these values
    # the rule can only match when one of these (field, literal) occurs in the field's lower-cased value
    required_literals: frozenset[tuple[str, str]] | None = None
    # `citysoc: {window: 2h}`: how far apart this rule's alerts of one case may be (None: the case API's default)
    incident_window_seconds: int | None = None

    @property
    def expression(self) -> str:
        """The condition in its plain spelling (shared lower-cased columns, `contains` tests)."""
        return self.condition.sql

    @property
    def lowered_fields(self) -> frozenset[str]:
        return self.condition.lowered_fields

    @property
    def literals(self) -> frozenset[tuple[str, str]]:
        return self.condition.literals

    @property
    def path(self) -> str:
        return self.location.path


@dataclass(frozen=True)
class UnsupportedRule:
    """A rule document that cannot run, and why (advice a rule author can act on)."""

    id: str | None
    title: str | None
    location: RuleLocation
    reason: str

    @property
    def path(self) -> str:
        return self.location.path


@dataclass
class CompiledRuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    unsupported: list[UnsupportedRule] = field(default_factory=list)
    verified: bool = False  # every expression passed Spark analysis

    def detections(self, dataset: str | None = None) -> list[CompiledRule]:
        return [r for r in self.rules if r.kind == "detection" and (dataset is None or dataset in r.datasets)]

    def correlations(self) -> list[CompiledRule]:
        return [r for r in self.rules if r.kind == "correlation"]

    def by_id(self, rule_id: str) -> CompiledRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def datasets(self) -> list[str]:
        return sorted({d for r in self.detections() for d in r.datasets})
