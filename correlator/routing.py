"""Log-source routing: evaluate each event only against the rules that can match it.

From a Sigma rule's detection tree (after its processing pipeline, so field names are ECS names) we
derive a `RouteKey`: a field and a finite set of lower-cased literals such that the rule can only
match an event whose lower-cased field value is one of them. `eventName: StopLogging` gives
`RouteKey("event.action", {"stoplogging"})`; `not selection`, keywords, wildcards, regexes and CIDRs
give nothing on their own, so a rule built only of those has no route and is evaluated for every event.

`rule_hits` turns a group of compiled rules into one array-valued Spark column: for each routing
field a `CASE` on the event's route key (a binary search over the sorted literals, so an event costs
about log2(values) string comparisons) whose branch holds only the rules routed to that value, plus
every unrouted rule. `rule_prefilter` is the cheap `IN` that drops events no rule of the group can
match before any predicate runs. `plan_chunks` packs rules into groups of at most `chunk_size`
predicates, which keeps Spark's generated code inside the JVM's method-size limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citysoc.schema import FIELDS

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

    from correlator.compiler import CompiledRule

# Routing fields in order of preference (the most selective first); any other scalar string field
# that every branch of a rule constrains to a finite set of literals can route as well.
PREFERRED_ROUTE_FIELDS: tuple[str, ...] = ("event.action", "event.provider", "process.name")
# Below this many literals a flat CASE is as fast as the binary search (measured: bench/README.md).
FLAT_CASE_MAX = 4


@dataclass(frozen=True)
class RouteKey:
    """The rule can only match an event whose lower-cased `field` is one of `values`."""

    field: str
    values: frozenset[str]

    @property
    def column(self) -> str:
        return route_column(self.field)


def route_column(field_name: str) -> str:
    """The column holding an event's lower-cased routing key: the field's pre-normalised column.

    The same `lower()` the compiled predicates compare against (`correlator.normalize`), so an event
    is routed to a rule exactly when the rule's equality on that field could be true.
    """
    from correlator.backend import normalized_column

    return normalized_column(field_name)


Requirements = dict[str, frozenset[str]]


def _literal(value: Any) -> str | None:
    """The lower-cased literal of a plain string value (no wildcard, placeholder, regex, ...)."""
    from sigma.types import SigmaString

    if not isinstance(value, SigmaString) or not all(isinstance(part, str) for part in value.s):
        return None
    text = "".join(value.s)  # type: ignore[arg-type]
    # Non-ASCII literals could lower-case differently in Python and on the JVM: never route on them.
    return text.lower() if text.isascii() else None


def required_values(node: Any) -> Requirements:
    """Fields the condition `node` constrains: node true => lower(field) in requirements[field].

    Sound by construction: AND needs every child's requirements (intersected per field), OR only
    those shared by all children (united), NOT and anything that is not a plain string equality
    require nothing.
    """
    from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR

    if isinstance(node, ConditionFieldEqualsValueExpression):
        literal = _literal(node.value)
        if literal is None or FIELDS.get(node.field) != "string":
            return {}
        return {node.field: frozenset([literal])}
    if isinstance(node, ConditionAND):
        merged: Requirements = {}
        for child in node.args:
            for name, values in required_values(child).items():
                merged[name] = merged[name] & values if name in merged else values
        return merged
    if isinstance(node, ConditionOR):
        children = [required_values(child) for child in node.args]
        if not children:
            return {}
        shared = set(children[0]).intersection(*children[1:])
        return {name: frozenset().union(*(child[name] for child in children)) for name in shared}
    return {}  # NOT, keywords, selectors never parsed away, ...


def choose_route(requirements: Mapping[str, frozenset[str]]) -> RouteKey | None:
    """The preferred routing field among those required, else the one with the fewest literals."""
    for name in PREFERRED_ROUTE_FIELDS:
        if name in requirements:
            return RouteKey(name, requirements[name])
    if not requirements:
        return None
    name = min(requirements, key=lambda candidate: (len(requirements[candidate]), candidate))
    return RouteKey(name, requirements[name])


def route_of(rule: Any) -> RouteKey | None:
    """The route of a processed pySigma detection rule (call after the backend converted it)."""
    conditions = rule.detection.parsed_condition
    if len(conditions) != 1:
        return None
    return choose_route(required_values(conditions[0].parsed))


@dataclass
class RuleChunk:
    """Rules evaluated in one projection: routed ones by field and value, and unrouted ones."""

    routed: dict[str, dict[str, list[CompiledRule]]] = field(default_factory=dict)
    unrouted: list[CompiledRule] = field(default_factory=list)
    size: int = 0  # predicates in the projection (a rule routed on n values counts n times)

    def add(self, rule: CompiledRule) -> None:
        route = rule.routing
        if route is None:
            self.unrouted.append(rule)
            self.size += 1
            return
        by_value = self.routed.setdefault(route.field, {})
        for value in route.values:
            by_value.setdefault(value, []).append(rule)
        self.size += len(route.values)


def _cost(rule: CompiledRule) -> int:
    return 1 if rule.routing is None else len(rule.routing.values)


def plan_chunks(rules: Sequence[CompiledRule], *, chunk_size: int, fold_unrouted: int = 0) -> list[RuleChunk]:
    """Rules packed into chunks of at most `chunk_size` predicates; unrouted rules chunk apart.

    Keeping unrouted rules apart lets every routed chunk drop the events it cannot match with its
    prefilter. A rule routed on more values than `chunk_size` gets a chunk of its own.

    Every chunk is one more scan of the events (a union's children do not share their scan). When
    there are at most `fold_unrouted` unrouted rules and a routed chunk has room for them, they join
    that chunk instead, and its prefilter lets their own matches through too (`rule_prefilter`):
    one scan instead of two. Each event still evaluates those rules about once: in the hits when a
    route lets it through, in the prefilter when none does (and again in the hits on their matches).
    Their expressions then appear twice in the chunk's generated code, hence the small bound.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    routed = sorted((r for r in rules if r.routing is not None),
                    key=lambda r: (r.routing.field if r.routing else "", sorted(r.routing.values) if r.routing else []))
    chunks: list[RuleChunk] = []
    for group in (routed, [r for r in rules if r.routing is None]):
        current = RuleChunk()
        for rule in group:
            if current.size and current.size + _cost(rule) > chunk_size:
                chunks.append(current)
                current = RuleChunk()
            current.add(rule)
        if current.size:
            chunks.append(current)
    loose = [chunk for chunk in chunks if not chunk.routed]
    if len(loose) == 1 and len(loose[0].unrouted) <= fold_unrouted and len(chunks) > 1:
        roomiest = min(chunks[:-1], key=lambda chunk: chunk.size)
        if roomiest.size + loose[0].size <= chunk_size:
            for rule in loose[0].unrouted:
                roomiest.add(rule)
            chunks.pop()
    return chunks


def route_fields(rules: Iterable[CompiledRule]) -> list[str]:
    return sorted({rule.routing.field for rule in rules if rule.routing is not None})


# The hit arrays are written as Spark SQL text and parsed once per chunk: building them from Column
# objects costs a Py4J round trip per node (thousands per run, seconds of fixed cost; bench/README.md).
_EMPTY_SQL = "CAST(array() AS array<string>)"


def _hits_sql(rules: Sequence[CompiledRule]) -> str:
    from correlator.backend import sql_string

    return "array(" + ", ".join(f"CASE WHEN ({rule.expression}) THEN {sql_string(rule.id)} END"
                                for rule in rules) + ")"


def dispatch_sql(key: str, branches: Sequence[tuple[str, str]], *, flat: bool = False) -> str:
    """SQL for `branches[i][1]` where `key == branches[i][0]`, else an empty array.

    `branches` must be sorted by value. Binary search with `<` on strings (about log2(n) comparisons
    per event) unless `flat` or the branches are few, where a flat CASE is as cheap.
    """
    from correlator.backend import sql_string

    if not branches:
        return _EMPTY_SQL
    if flat or len(branches) <= max(1, FLAT_CASE_MAX):
        cases = " ".join(f"WHEN {key} = {sql_string(value)} THEN {hits}" for value, hits in branches)
        return f"CASE {cases} ELSE {_EMPTY_SQL} END"
    middle = len(branches) // 2
    return (f"CASE WHEN {key} < {sql_string(branches[middle][0])} THEN {dispatch_sql(key, branches[:middle])} "
            f"ELSE {dispatch_sql(key, branches[middle:])} END")


def rule_hits_sql(chunk: RuleChunk, *, flat: bool = False) -> str:
    """SQL array<string> of the ids of the chunk's rules that match the row (nulls for non-matches)."""
    from correlator.backend import quote_path

    parts: list[str] = []
    for name in sorted(chunk.routed):
        by_value = chunk.routed[name]
        branches = [(value, _hits_sql(by_value[value])) for value in sorted(by_value)]
        parts.append(dispatch_sql(quote_path(route_column(name)), branches, flat=flat))
    if chunk.unrouted:
        parts.append(_hits_sql(chunk.unrouted))
    return parts[0] if len(parts) == 1 else "concat(" + ", ".join(parts) + ")"


def rule_hits(chunk: RuleChunk, *, flat: bool = False) -> Column:
    """`rule_hits_sql` as one Column (one parse)."""
    from pyspark.sql import functions as F

    return F.expr(rule_hits_sql(chunk, flat=flat))


def rule_prefilter(chunk: RuleChunk, *, functions: SparkSession | None = None) -> Column | None:
    """True for the events some rule of the chunk may match; None when every event qualifies.

    The routes' `IN` tests, then the expressions of the unrouted rules folded into the chunk (OR
    stops at the first true test, so those run only on the events no route lets through). With
    `functions` (a session with CitySOC's JVM functions), a route's test is `citysoc_in_lower` on the field
    itself: every event is tested, and folding case while reading spares each one a `lower()` copy.
    """
    from pyspark.sql import functions as F

    from correlator.backend import quote_path, sql_string
    from correlator.literal_index import folded_call

    if not chunk.routed:
        return None
    if functions is not None:
        tests = [folded_call(functions, "citysoc_in_lower", name, sorted(chunk.routed[name]))
                 for name in sorted(chunk.routed)]
    else:
        tests = [f"{quote_path(route_column(name))} IN ({', '.join(sql_string(v) for v in sorted(chunk.routed[name]))})"
                 for name in sorted(chunk.routed)]
    tests += [rule.expression for rule in chunk.unrouted]  # folded in (`plan_chunks`): their own matches pass
    return F.expr(" OR ".join(f"({test})" for test in tests))
