"""Sigma rules -> Spark SQL, with a report of every rule that cannot run and why.

`RuleCompiler(spark).compile([dir, ...])` loads every `**/*.yml` below the given paths, routes each
rule to our datasets by its log source (`correlator.compiler.logsources`), converts it with
`CitySocSparkBackend`, and finally lets Spark analyse every expression against the event schema.
Nothing is skipped silently: a rule is either a `CompiledRule` or an `UnsupportedRule` with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog
import yaml
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule, SigmaRuleBase

from citysoc.schedule import parse_duration
from citysoc.schema import spark_schema
from correlator.compiler.analysis import required_literals, route_key
from correlator.compiler.backend import CitySocSparkBackend
from correlator.compiler.logsources import LogSourceRoute, describe_logsource, find_route
from correlator.errors import RuleCompileError, RuleLocation
from correlator.model import (
    CORRELATION_TYPES,
    ChainedReference,
    CompiledRule,
    CompiledRuleSet,
    CorrelationSpec,
    UnsupportedRule,
)
from correlator.sql import Condition, lowered_column, lowered_sql, resolve_field

log = structlog.get_logger(__name__)

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "detection_rules"
# Types measuring the condition's `field`.
VALUE_CORRELATIONS = frozenset({
    SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG,
    SigmaCorrelationType.VALUE_PERCENTILE, SigmaCorrelationType.VALUE_MEDIAN,
})


def placeholder_pipeline(values: Mapping[str, list[str]]) -> ProcessingPipeline:
    """Replace the configured `|expand` placeholders by their value lists (others stay, and are refused)."""
    return ProcessingPipeline(
        name="CitySOC placeholders", priority=10, vars=dict(values),
        items=[ProcessingItem(identifier="citysoc_placeholders",
                              transformation=ValueListPlaceholderTransformation(include=sorted(values)))],
    )


def _location(rule: SigmaRuleBase) -> RuleLocation:
    return RuleLocation(str(rule.source.path) if rule.source is not None and rule.source.path else "")


def _tags(rule: SigmaRuleBase) -> tuple[str, ...]:
    return tuple(f"{tag.namespace}.{tag.name}" for tag in rule.tags)


def _level(rule: SigmaRuleBase) -> str | None:
    return rule.level.name.lower() if rule.level else None


# The case API's bounds on a rule's grouping window (`incident.window_seconds` of an alert).
MIN_INCIDENT_WINDOW, MAX_INCIDENT_WINDOW = 60, 30 * 86400


def _incident_window(rule: SigmaRuleBase) -> int | UnsupportedRule | None:
    """`citysoc: {window: 2h}` in seconds (None when absent): how far apart the rule's alerts of one case may be."""
    custom = rule.custom_attributes.get("citysoc") or {}
    text = custom.get("window") if isinstance(custom, dict) else None
    if text is None:
        return None
    try:
        seconds = int(parse_duration(str(text)).total_seconds())
    except ValueError as exc:
        return _unsupported(rule, f"citysoc window: {exc}")
    if not MIN_INCIDENT_WINDOW <= seconds <= MAX_INCIDENT_WINDOW:
        return _unsupported(rule, f"citysoc window {text!r} is outside 1m..30d "
                                  "(how far apart alerts of one case may be)")
    return seconds


def _unsupported(rule: SigmaRuleBase, reason: str) -> UnsupportedRule:
    return UnsupportedRule(str(rule.id) if rule.id else None, rule.title, _location(rule), reason)


def _yaml_location(path: Path, error: BaseException) -> RuleLocation:
    """Where a YAML error is: 1-based line and column of its problem (the file alone when it has none)."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return RuleLocation(str(path))
    return RuleLocation(str(path), mark.line + 1, mark.column + 1)


def _yaml_text(error: BaseException) -> str:
    """`expected <block end>, but found '<block mapping start>' (while parsing a block mapping at line 7)`."""
    problem, context = getattr(error, "problem", None), getattr(error, "context", None)
    if not problem:
        return _error_text(error)
    mark = getattr(error, "context_mark", None)
    if context and mark is not None:
        return f"{problem} ({context} that starts at line {mark.line + 1})"
    return f"{problem} ({context})" if context else str(problem)


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text


class RuleCompiler:
    """Compiles Sigma rule directories for our datasets; `spark` enables the analysis check.

    `placeholders` gives the values of `|expand` placeholders (`%admins%` -> ["root", "admin"]); a rule
    using a placeholder without configured values is unsupported with that reason.
    """

    def __init__(self, spark: SparkSession | None = None, *,
                 placeholders: Mapping[str, Sequence[str]] | None = None) -> None:
        self.spark = spark
        self.placeholders = {name: list(values) for name, values in (placeholders or {}).items()}

    def load(self, paths: Sequence[Path | str]) -> tuple[SigmaCollection, list[UnsupportedRule]]:
        """Parse every `**/*.yml` below `paths`; a file that is not YAML or not Sigma is reported."""
        problems: list[UnsupportedRule] = []
        for path in paths:
            if not Path(path).exists():
                raise RuleCompileError(f"rule path {path} does not exist: pass a directory or file of Sigma rules")

        def check_yaml(path: Path) -> Path | None:
            try:
                list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                problems.append(UnsupportedRule(None, None, _yaml_location(path, exc),
                                                f"not valid YAML: {_yaml_text(exc)}"))
                return None
            return path

        def check_collection(path: Path, collection: SigmaCollection) -> SigmaCollection:
            attached = {id(error) for rule in collection.rules for error in rule.errors}
            for error in collection.errors:
                if id(error) in attached:
                    continue  # reported with its rule below
                problems.append(UnsupportedRule(None, None, RuleLocation(str(path)),
                                                f"not a valid Sigma rule: {error}"))
            return collection

        collection = SigmaCollection.load_ruleset(
            [Path(p) for p in paths], collect_errors=True, on_beforeload=check_yaml, on_load=check_collection,
            recursion_pattern="**/*.yml", resolve_references=False,
        )
        return collection, problems

    def compile(self, paths: Sequence[Path | str]) -> CompiledRuleSet:
        collection, problems = self.load(paths)
        result = CompiledRuleSet(unsupported=problems)
        detections: dict[str, tuple[CompiledRule, LogSourceRoute]] = {}
        seen_ids: set[str] = set()
        correlations: list[SigmaCorrelationRule] = []
        for rule in collection.rules:
            if rule.errors:
                result.unsupported.append(_unsupported(rule, f"not a valid Sigma rule: {rule.errors[0]}"))
                continue
            if rule.id is None:
                result.unsupported.append(_unsupported(rule, "rule has no id (alert ids are derived from it)"))
                continue
            if str(rule.id) in seen_ids:
                result.unsupported.append(_unsupported(rule, f"duplicate rule id {rule.id}"))
                continue
            seen_ids.add(str(rule.id))
            if isinstance(rule, SigmaCorrelationRule):
                correlations.append(rule)
            elif isinstance(rule, SigmaRule):
                compiled = self._compile_detection(rule)
                if isinstance(compiled, UnsupportedRule):
                    result.unsupported.append(compiled)
                else:
                    detections[compiled[0].id] = compiled
        names = {r.name: str(r.id) for r in collection.rules if r.name and r.id}
        compiled_correlations = self._compile_correlations(correlations, detections, names, result.unsupported)
        # A rule referenced by a correlation without `generate: true` raises no alert of its own (Sigma
        # semantics, as pySigma's `disable_output`), be it a detection or a chained correlation.
        generating = {str(c.id) for c in correlations if c.generate}
        silenced = {
            rid for c in compiled_correlations if c.correlation and c.id not in generating
            for rid in c.correlation.rule_ids
        }
        result.rules = [replace(rule, generate=rule.id not in silenced) for rule, _ in detections.values()]
        compiled_correlations = [replace(rule, generate=rule.id not in silenced) for rule in compiled_correlations]
        result.rules += compiled_correlations
        if self.spark is not None:
            self.verify(result)
        log.debug("rules compiled", compiled=len(result.rules), unsupported=len(result.unsupported))
        return result

    def _compile_detection(self, rule: SigmaRule) -> tuple[CompiledRule, LogSourceRoute] | UnsupportedRule:
        route = find_route(rule.logsource)
        if route is None:
            return _unsupported(rule, f"log source {describe_logsource(rule.logsource)} is not collected")
        pipeline = route.pipeline()
        if self.placeholders:
            pipeline = placeholder_pipeline(self.placeholders) + pipeline
        backend = CitySocSparkBackend(pipeline, datasets=route.datasets, raw_log_field=route.raw_field)
        try:
            queries = backend.convert_rule(rule)
        except (SigmaError, NotImplementedError, ValueError, TypeError) as exc:
            return _unsupported(rule, _error_text(exc))
        if len(queries) != 1 or not isinstance(queries[0], str):
            return _unsupported(rule, f"backend produced {len(queries)} queries, expected one")
        group_by: list[tuple[str, str]] = []
        custom = rule.custom_attributes.get("citysoc") or {}
        for name in (custom.get("group_by") or []) if isinstance(custom, dict) else []:
            expr = resolve_field(route.map_field(name))
            if expr is None:
                return _unsupported(rule, f"group_by field {name} has no source in {', '.join(route.datasets)}")
            group_by.append((name, expr))
        window = _incident_window(rule)
        if isinstance(window, UnsupportedRule):
            return window
        condition = backend.condition(queries[0])
        compiled = CompiledRule(
            id=str(rule.id), title=rule.title, level=_level(rule), tags=_tags(rule), datasets=route.datasets,
            condition=condition, location=_location(rule), kind="detection", name=rule.name,
            group_by=tuple(group_by), incident_window_seconds=window,
            # after convert_rule: the tree carries the pipeline's ECS names
            routing=route_key(rule),
            required_literals=required_literals(rule, raw_field=route.raw_field, recorded=condition.literals),
        )
        return compiled, route

    def _compile_correlations(self, correlations: Sequence[SigmaCorrelationRule],
                              detections: Mapping[str, tuple[CompiledRule, LogSourceRoute]],
                              names: Mapping[str, str], unsupported: list[UnsupportedRule]) -> list[CompiledRule]:
        """Every correlation, each after the correlations it references (chaining); cycles are refused."""
        by_id = {str(corr.id): corr for corr in correlations}
        compiled: dict[str, CompiledRule] = {}
        refused: dict[str, str] = {}

        def visit(corr: SigmaCorrelationRule, path: tuple[str, ...]) -> None:
            rule_id = str(corr.id)
            if rule_id in compiled or rule_id in refused:
                return
            if rule_id in path:
                refused[rule_id] = "correlation rules reference each other in a cycle"
                unsupported.append(_unsupported(corr, refused[rule_id]))
                return
            for ref in corr.rules or []:
                child = by_id.get(names.get(ref.reference, ref.reference))
                if child is not None:
                    visit(child, (*path, rule_id))
            if rule_id in refused:
                return
            outcome = self._compile_correlation(corr, detections, compiled, refused, names)
            if isinstance(outcome, UnsupportedRule):
                refused[rule_id] = outcome.reason
                unsupported.append(outcome)
            else:
                compiled[rule_id] = outcome

        for corr in correlations:
            visit(corr, ())
        return list(compiled.values())

    def _compile_correlation(self, corr: SigmaCorrelationRule,
                             detections: Mapping[str, tuple[CompiledRule, LogSourceRoute]],
                             chained: Mapping[str, CompiledRule], refused: Mapping[str, str],
                             names: Mapping[str, str]) -> CompiledRule | UnsupportedRule:
        kind = corr.type.name.lower()
        if kind not in CORRELATION_TYPES:
            return _unsupported(corr, f"correlation type {kind} is not supported")
        condition = corr.condition
        if not isinstance(condition, SigmaCorrelationCondition):
            return _unsupported(corr, "extended (boolean) correlation conditions are not supported: list the rules "
                                      "under `rules:` and use a count condition")
        if not corr.rules:
            return _unsupported(corr, "correlation references no rule")
        group_by = tuple(corr.group_by or ())
        fieldref: str | None = None
        if corr.type in VALUE_CORRELATIONS:
            if not isinstance(condition.fieldref, str):
                return _unsupported(corr, f"{kind} needs exactly one field in its condition")
            fieldref = condition.fieldref
        percentile: float | None = None
        if corr.type == SigmaCorrelationType.VALUE_PERCENTILE:
            if condition.percentile is None or not 0 <= condition.percentile <= 100:
                return _unsupported(corr, "value_percentile needs `percentile:` between 0 and 100 in its condition")
            percentile = float(condition.percentile)
        elif corr.type == SigmaCorrelationType.VALUE_MEDIAN:
            percentile = 50.0
        rule_ids: list[str] = []
        base_fields: list[tuple[str, tuple[str, ...], str | None]] = []
        chain: list[ChainedReference] = []
        datasets: set[str] = set()
        for ref in corr.rules:
            rule_id = names.get(ref.reference, ref.reference)
            if rule_id in rule_ids:
                return _unsupported(corr, f"references rule {ref.reference} twice")
            rule_ids.append(rule_id)

            def field_of(name: str, ref_name: str = ref.reference, ref_id: str = rule_id) -> str:
                """`name`, or what the correlation's `aliases` map it to for this referenced rule."""
                alias = corr.aliases.aliases.get(name)
                if alias is None:
                    return name
                for target, mapped in alias.mapping.items():
                    if names.get(target.reference, target.reference) == ref_id or target.reference == ref_name:
                        return mapped
                return name

            if rule_id in detections:
                base, route = detections[rule_id]
                exprs: list[str] = []
                for name in group_by:
                    expr = resolve_field(route.map_field(field_of(name)))
                    if expr is None:
                        return _unsupported(corr, f"group-by field {field_of(name)} has no source in rule "
                                                  f"{ref.reference} ({', '.join(route.datasets)})")
                    exprs.append(expr)
                value_expr = None
                if fieldref is not None:
                    value_expr = resolve_field(route.map_field(field_of(fieldref)))
                    if value_expr is None:
                        return _unsupported(corr, f"field {field_of(fieldref)} has no source in rule {ref.reference}")
                base_fields.append((rule_id, tuple(exprs), value_expr))
                datasets.update(base.datasets)
            elif rule_id in chained:
                child = chained[rule_id]
                child_group = child.correlation.group_by if child.correlation else ()
                wanted = [field_of(name) for name in group_by]
                absent = [name for name in wanted if name not in child_group]
                if fieldref is not None and field_of(fieldref) not in child_group:
                    absent.append(field_of(fieldref))
                if absent:
                    return _unsupported(corr, f"chained correlation {ref.reference} groups by "
                                              f"{', '.join(child_group) or 'nothing'}: {', '.join(absent)} is not "
                                              "among its group-by fields (name it there, or map it with aliases)")
                chain.append(ChainedReference(
                    rule_id, tuple(child_group.index(name) for name in wanted),
                    child_group.index(field_of(fieldref)) if fieldref is not None else None))
                datasets.update(child.datasets)
            elif rule_id in refused:
                return _unsupported(corr, f"references correlation {ref.reference}, which cannot run: "
                                          f"{refused[rule_id]}")
            else:
                return _unsupported(corr, f"references rule {ref.reference}, which is missing or unsupported")
        group_exprs = base_fields[0][1] if base_fields else ()
        value_expr = base_fields[0][2] if base_fields else None
        spec = CorrelationSpec(
            type=kind, rule_ids=tuple(rule_ids), group_by=group_by, group_exprs=group_exprs,
            timespan_seconds=corr.timespan.seconds, op=condition.op.name.lower(), count=condition.count,
            value_field=fieldref, value_expr=value_expr, percentile=percentile,
            fields_by_rule=tuple(f for f in base_fields[1:] if f[1:] != (group_exprs, value_expr)),
            chained=tuple(chain),
        )
        window = _incident_window(corr)
        if isinstance(window, UnsupportedRule):
            return window
        return CompiledRule(
            id=str(corr.id), title=corr.title, level=_level(corr), tags=_tags(corr), datasets=tuple(sorted(datasets)),
            condition=Condition.text(""), location=_location(corr), kind="correlation", name=corr.name,
            group_by=tuple(zip(group_by, group_exprs, strict=True)) if base_fields else (), correlation=spec,
            incident_window_seconds=window,
        )

    def verify(self, ruleset: CompiledRuleSet) -> None:
        """Let Spark analyse every expression against the event schema (no data is read); a rule Spark refuses
        (and a correlation referencing it) moves to `ruleset.unsupported`. `compile` does it when the compiler
        has a session; a caller that compiled without one (while its session starts) calls it after."""
        assert self.spark is not None
        empty = self.spark.createDataFrame([], spark_schema())
        if _analyses(empty, ruleset.rules):
            ruleset.verified = True  # every rule at once: one analysis instead of one per expression
            return
        kept: list[CompiledRule] = []
        failed: set[str] = set()
        for rule in ruleset.rules:
            try:
                _analyse(empty, [rule])
            except (PySparkException, ValueError) as exc:
                condition = exc.getCondition() if isinstance(exc, PySparkException) else None
                reason = f"Spark analysis failed: {condition or _error_text(exc)}"
                ruleset.unsupported.append(UnsupportedRule(rule.id, rule.title, rule.location, reason))
                failed.add(rule.id)
                continue
            kept.append(rule)
        # A correlation referencing a rule that failed analysis (or cannot run for that) cannot run either.
        changed = True
        while changed:
            changed = False
            for rule in list(kept):
                if rule.correlation and failed.intersection(rule.correlation.rule_ids):
                    kept.remove(rule)
                    failed.add(rule.id)
                    changed = True
                    ruleset.unsupported.append(UnsupportedRule(rule.id, rule.title, rule.location,
                                                               "references a rule that failed Spark analysis"))
        ruleset.rules = kept
        ruleset.verified = True


def _expressions(rule: CompiledRule) -> list[str]:
    """The SQL expressions of `rule` Spark must accept: its condition first, then group-by and measures."""
    exprs = [e for _, e in rule.group_by]
    if rule.expression:
        exprs.insert(0, rule.expression)
    if rule.correlation:
        exprs += rule.correlation.expressions
    return exprs


def _analyse(empty: DataFrame, rules: Sequence[CompiledRule]) -> None:
    """Let Spark analyse the expressions of `rules` in one projection over an empty frame carrying the
    shared lower-cased columns of the fields they read lower-cased; raises what Spark raises, or
    ValueError for a condition that is not boolean."""
    lowered = sorted({name for rule in rules for name in rule.lowered_fields})
    probe = empty.withColumns({lowered_column(name): F.expr(lowered_sql(name, column=False)) for name in lowered})
    columns = [(rule, index, F.expr(expr).alias(f"_e{number}_{index}"))
               for number, rule in enumerate(rules) for index, expr in enumerate(_expressions(rule))]
    if not columns:
        return
    fields = probe.select(*(column for _, _, column in columns)).schema.fields
    for (rule, index, _), schema_field in zip(columns, fields, strict=True):
        if index == 0 and rule.expression and not isinstance(schema_field.dataType, BooleanType):
            raise ValueError(f"expression is {schema_field.dataType.simpleString()}, not boolean")


def _analyses(empty: DataFrame, rules: Sequence[CompiledRule]) -> bool:
    """Whether every rule's expressions pass Spark's analysis together (False: find which, one by one)."""
    try:
        _analyse(empty, rules)
    except (PySparkException, ValueError):
        return False
    return True
