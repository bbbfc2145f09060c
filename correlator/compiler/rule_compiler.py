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
from pyspark.sql import SparkSession
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
from correlator.model import CompiledRule, CompiledRuleSet, CorrelationSpec, UnsupportedRule
from correlator.sql import Condition, lowered_column, lowered_sql, resolve_field

log = structlog.get_logger(__name__)

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "detection_rules"
SUPPORTED_CORRELATIONS = (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT)


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


def _yaml_line(error: BaseException) -> int:
    """1-based line of a YAML error (0 when it has none)."""
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark is not None else 0


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
                problems.append(UnsupportedRule(None, None, RuleLocation(str(path), _yaml_line(exc)),
                                                f"not valid YAML: {_error_text(exc)}"))
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
        compiled_correlations: list[CompiledRule] = []
        for corr in correlations:
            outcome = self._compile_correlation(corr, detections, names)
            if isinstance(outcome, UnsupportedRule):
                result.unsupported.append(outcome)
            else:
                compiled_correlations.append(outcome)
        # A base rule of a correlation without `generate: true` raises no alert of its own (Sigma semantics).
        generating = {str(c.id) for c in correlations if c.generate}
        silenced = {
            rid for c in compiled_correlations if c.correlation and c.id not in generating
            for rid in c.correlation.rule_ids
        }
        result.rules = [replace(rule, generate=rule.id not in silenced) for rule, _ in detections.values()]
        result.rules += compiled_correlations
        if self.spark is not None:
            self._verify(result)
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

    def _compile_correlation(self, corr: SigmaCorrelationRule,
                             detections: dict[str, tuple[CompiledRule, LogSourceRoute]],
                             names: dict[str, str]) -> CompiledRule | UnsupportedRule:
        if corr.type not in SUPPORTED_CORRELATIONS:
            return _unsupported(corr, f"correlation type {corr.type.name.lower()} is not supported yet")
        condition = corr.condition
        if not isinstance(condition, SigmaCorrelationCondition):
            return _unsupported(corr, "extended correlation conditions are not supported yet")
        base: list[tuple[CompiledRule, LogSourceRoute]] = []
        for ref in corr.rules or []:
            rule_id = names.get(ref.reference, ref.reference)
            if rule_id not in detections:
                return _unsupported(corr, f"references rule {ref.reference}, which is missing, unsupported "
                                          "or itself a correlation (chained correlations are not supported yet)")
            base.append(detections[rule_id])
        if not base:
            return _unsupported(corr, "correlation references no rule")
        group_by = tuple(corr.group_by or ())
        group_exprs: list[str] = []
        for name in group_by:
            exprs = {resolve_field(route.map_field(name)) for _, route in base}
            if None in exprs or len(exprs) != 1:
                return _unsupported(corr, f"group-by field {name} has no single source in the referenced rules")
            group_exprs.append(exprs.pop() or "")
        value_field = value_expr = None
        if corr.type == SigmaCorrelationType.VALUE_COUNT:
            fieldref = condition.fieldref
            if not isinstance(fieldref, str):
                return _unsupported(corr, "value_count needs exactly one field in its condition")
            value_field = fieldref
            exprs = {resolve_field(route.map_field(fieldref)) for _, route in base}
            if None in exprs or len(exprs) != 1:
                return _unsupported(corr, f"field {fieldref} has no single source in the referenced rules")
            value_expr = exprs.pop()
        spec = CorrelationSpec(
            type=corr.type.name.lower(), rule_ids=tuple(rule.id for rule, _ in base), group_by=group_by,
            group_exprs=tuple(group_exprs), timespan_seconds=corr.timespan.seconds,
            op=condition.op.name.lower(), count=condition.count, value_field=value_field, value_expr=value_expr,
        )
        datasets = tuple(sorted({d for rule, _ in base for d in rule.datasets}))
        window = _incident_window(corr)
        if isinstance(window, UnsupportedRule):
            return window
        return CompiledRule(
            id=str(corr.id), title=corr.title, level=_level(corr), tags=_tags(corr), datasets=datasets,
            condition=Condition.text(""), location=_location(corr), kind="correlation", name=corr.name,
            group_by=tuple(zip(group_by, group_exprs, strict=True)), correlation=spec, incident_window_seconds=window,
        )

    def _verify(self, ruleset: CompiledRuleSet) -> None:
        """Let Spark analyse every expression against the event schema (no data is read)."""
        assert self.spark is not None
        empty = self.spark.createDataFrame([], spark_schema())
        kept: list[CompiledRule] = []
        failed: set[str] = set()
        for rule in ruleset.rules:
            exprs = [e for _, e in rule.group_by]
            if rule.expression:
                exprs.insert(0, rule.expression)
            if rule.correlation and rule.correlation.value_expr:
                exprs.append(rule.correlation.value_expr)
            try:
                # the shared lower-cased columns of exactly the fields the rule reads lower-cased
                probe = empty.withColumns({lowered_column(name): F.expr(lowered_sql(name, column=False))
                                           for name in sorted(rule.lowered_fields)})
                for index, expr in enumerate(exprs):
                    data_type = probe.select(F.expr(expr)).schema.fields[0].dataType
                    if index == 0 and rule.expression and not isinstance(data_type, BooleanType):
                        raise ValueError(f"expression is {data_type.simpleString()}, not boolean")
            except (PySparkException, ValueError) as exc:
                condition = exc.getCondition() if isinstance(exc, PySparkException) else None
                reason = f"Spark analysis failed: {condition or _error_text(exc)}"
                ruleset.unsupported.append(UnsupportedRule(rule.id, rule.title, rule.location, reason))
                failed.add(rule.id)
                continue
            kept.append(rule)
        # A correlation whose base rule failed analysis cannot run either.
        for rule in list(kept):
            if rule.correlation and failed.intersection(rule.correlation.rule_ids):
                kept.remove(rule)
                ruleset.unsupported.append(UnsupportedRule(rule.id, rule.title, rule.location,
                                                           "references a rule that failed Spark analysis"))
        ruleset.rules = kept
        ruleset.verified = True
