"""Apply a `MatchPlan` (`correlator.engine.plan`) to a DataFrame of events: one row per (event, matching rule).

Rule conditions reach Spark as SQL text (`selectExpr`, `filter` of a string), parsed once per chunk: building
them from `Column` objects would cost a Py4J round trip per node (thousands per run).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame

from correlator.engine.jvm import register_functions
from correlator.engine.options import EngineOptions
from correlator.engine.plan import MatchPlan, plan_matching
from correlator.engine.unions import union_all
from correlator.model import CompiledRule


def match_rules(events: DataFrame, plan: MatchPlan) -> DataFrame:
    """The events' columns plus `_rule_id`, one row per (event, rule of the plan that matches it)."""
    if plan.functions:
        register_functions(events.sparkSession)
    if plan.lowered_columns:
        events = events.selectExpr("*", *(f"{sql} AS `{name}`" for name, sql in plan.lowered_sql.items()))
    if plan.index.literals:
        events = events.selectExpr("*", *(f"{sql} AS `{name}`" for name, sql in plan.bitmap_sql.items()))
    parts = []
    for chunk in plan.chunks:
        candidates = events if chunk.prefilter is None else events.filter(chunk.prefilter)
        parts.append(candidates.selectExpr("*", f"explode(array_compact({chunk.hits})) AS `_rule_id`"))
    return union_all(parts).drop(*plan.added_columns)


def match(events: DataFrame, rules: Sequence[CompiledRule], options: EngineOptions) -> DataFrame:
    """`match_rules` with the plan for `rules` and `options`."""
    return match_rules(events, plan_matching(rules, options))
