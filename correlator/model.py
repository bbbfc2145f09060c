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
# Entity fields that key incidents: the default group key is the first of them an event has.
GROUPING_ENTITY_FIELDS: tuple[str, ...] = ("user.name", "source.ip", "host.name", "cloud.account.id")
# Entity fields an alert carries as indicators only (campaigns across tenants, case observables): they never
# make a group key, so a tenant's alerts do not join one case because they share a browser or a domain.
INDICATOR_ENTITY_FIELDS: tuple[str, ...] = (
    "user.email", "user_agent.original", "source.domain", "destination.domain", "url.domain", "dns.question.name",
    "process.hash.sha256", "file.hash.sha256", "source.as.number",
)
# Every entity field an alert names, in the order alerts list them.
ENTITY_FIELDS: tuple[str, ...] = GROUPING_ENTITY_FIELDS + INDICATOR_ENTITY_FIELDS


@dataclass(frozen=True)
class RouteKey:
    """The rule can only match an event whose lower-cased `field` is one of `values`."""

    field: str
    values: frozenset[str]


CORRELATION_TYPES: tuple[str, ...] = (
    "event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg", "value_percentile",
    "value_median",
)


@dataclass(frozen=True)
class ChainedReference:
    """A correlation rule referenced by another: its alerts are the referencing rule's matches.

    `group_positions`: for each of the referencing rule's group-by fields, its position in the referenced
    rule's group-by (after `aliases`); `value_position` likewise for the condition's `field`.
    """

    rule_id: str
    group_positions: tuple[int, ...]
    value_position: int | None = None


@dataclass(frozen=True)
class CorrelationSpec:
    """What a correlation rule measures, per group of referenced-rule matches, within a time span.

    `rule_ids` are the referenced rules in the rule's order (the order `temporal_ordered` asks for);
    detection rules among them read `group_exprs` / `value_expr`, or their own expressions in
    `fields_by_rule` when `aliases` name a different field per rule; correlation rules among them are
    listed in `chained`.
    """

    type: str  # one of CORRELATION_TYPES
    rule_ids: tuple[str, ...]  # referenced rules, detection or correlation
    group_by: tuple[str, ...]  # field names (or aliases) as the rule writes them (used in the group key)
    group_exprs: tuple[str, ...]  # Spark SQL for each group-by field
    timespan_seconds: int
    op: str  # "gte", "gt", "lte", "lt", "eq", "neq"
    count: float  # the condition's threshold (an integer for the counting types)
    value_field: str | None = None  # the condition's `field` (value_count, value_sum, ...)
    value_expr: str | None = None
    percentile: float | None = None  # value_percentile (value_median: 50)
    fields_by_rule: tuple[tuple[str, tuple[str, ...], str | None], ...] = ()  # (rule id, group exprs, value expr)
    chained: tuple[ChainedReference, ...] = ()

    @property
    def base_rule_ids(self) -> tuple[str, ...]:
        """The referenced detection rules."""
        chained = {reference.rule_id for reference in self.chained}
        return tuple(rule_id for rule_id in self.rule_ids if rule_id not in chained)

    def fields_for(self, rule_id: str) -> tuple[tuple[str, ...], str | None]:
        """Group-by and value expressions reading one referenced detection rule's matches."""
        for candidate, group_exprs, value_expr in self.fields_by_rule:
            if candidate == rule_id:
                return group_exprs, value_expr
        return self.group_exprs, self.value_expr

    def chain_for(self, rule_id: str) -> ChainedReference | None:
        return next((reference for reference in self.chained if reference.rule_id == rule_id), None)

    @property
    def expressions(self) -> tuple[str, ...]:
        """Every Spark SQL expression the correlation reads from event rows."""
        exprs = [*self.group_exprs, *([self.value_expr] if self.value_expr else [])]
        for _, group_exprs, value_expr in self.fields_by_rule:
            exprs += [*group_exprs, *([value_expr] if value_expr else [])]
        return tuple(dict.fromkeys(exprs))


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
