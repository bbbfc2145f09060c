"""How the engine evaluates a set of rules over one dataset: `plan_matching(rules, options) -> MatchPlan`.

Spark-free: every choice the engine makes is in the plan, as data and as the SQL text it runs, so the
choices are tested in milliseconds (`tests/correlator/test_plan.py`) and `correlator.engine.matching`
only applies them.

1. **Routing.** A rule with a route key (`correlator.compiler.analysis.route_key`) runs only for the
   events whose lower-cased key is one of its values: in a chunk's projection, a `CASE` on the key
   (a binary search over the sorted values) holds in each branch only the rules routed to that value;
   the chunk's prefilter drops the events no rule of it can match before any predicate runs.
2. **Chunks.** Rules are packed into projections of at most `chunk_size` predicates (a rule routed on n
   values counts n), unrouted rules apart from routed ones, so each routed chunk can prefilter. Every
   chunk is one scan; a few unrouted rules may join a routed chunk (its prefilter lets their matches
   through): one scan less.
3. **Lower-cased values.** Each field the rules compare case-insensitively is lowered once per row as a
   shared column, except the fields only routed rules read: those rules lower them in place, behind
   their route (with the JVM functions, every field routed rules read, since they read the field's
   bytes for their substring tests and would otherwise make a chunk lower it for every event it lets
   through).
4. **Literal index.** Unrouted rules answer their substring tests from one bitmap per field
   (`correlator.engine.literal_index`); those that need an indexed literal form gated chunks whose
   prefilter is "one of the literals occurs".
5. **JVM functions.** With them, route prefilters test the field itself (`citysoc_in_lower`), routed
   rules' substring tests read the field's bytes (`citysoc_contains_any`, one call for an OR of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from correlator.engine.literal_index import LiteralIndex
from correlator.engine.options import EngineOptions
from correlator.errors import EngineError
from correlator.model import CompiledRule
from correlator.sql import (
    Spelling,
    any_of,
    dispatch_sql,
    function_call,
    hits_sql,
    in_list_sql,
    lowered_column,
    lowered_sql,
    route_branches,
)


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

    @property
    def rule_ids(self) -> tuple[str, ...]:
        routed = {rule.id: None for values in self.routed.values() for rules in values.values() for rule in rules}
        return (*routed, *(rule.id for rule in self.unrouted))


def _cost(rule: CompiledRule) -> int:
    return 1 if rule.routing is None else len(rule.routing.values)


def plan_chunks(rules: Sequence[CompiledRule], *, chunk_size: int, fold_unrouted: int = 0) -> list[RuleChunk]:
    """Rules packed into chunks of at most `chunk_size` predicates; unrouted rules chunk apart.

    A rule routed on more values than `chunk_size` gets a chunk of its own. When there are at most
    `fold_unrouted` unrouted rules and a routed chunk has room for them, they join that chunk: each
    event still evaluates them about once (in the hits when a route lets it through, in the prefilter
    when none does), but their expressions then appear twice in the chunk's generated code, hence
    the small bound.
    """
    if chunk_size < 1:
        raise EngineError("chunk_size must be at least 1")
    routed = sorted((r for r in rules if r.routing is not None),
                    key=lambda r: (r.routing.field, sorted(r.routing.values)) if r.routing else ("", []))
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


def routed_only_fields(rules: Sequence[CompiledRule], shared: Iterable[str] = (), *,
                       functions: bool = False) -> frozenset[str]:
    """Lower-cased fields that routed rules lower in place rather than read from a shared column.

    A shared column is computed for every event a chunk's prefilter lets through; `lower()` of a field
    read by a few rules routed on rare values costs less inside those rules, which run only for the
    events routed to them. Without the JVM functions: the fields only routed rules read; with them,
    every field routed rules read (each chunk is its own projection, so a routed chunk would lower it
    for every event it lets through). Route keys (`shared`) stay columns.
    """
    unrouted = {name for rule in rules if rule.routing is None for name in rule.lowered_fields}
    routed = {name for rule in rules if rule.routing is not None for name in rule.lowered_fields}
    return frozenset(routed - set(shared) - (set() if functions else unrouted))


@dataclass(frozen=True)
class PlannedChunk:
    """One projection: the rules it evaluates, the SQL of its prefilter (None: every event) and hit array."""

    rule_ids: tuple[str, ...]
    routed: bool  # some rule of the chunk has a route key
    gated: bool  # the prefilter is the literal index's gate
    prefilter: str | None
    hits: str  # array<string> of the ids of the chunk's rules that match the row (nulls for non-matches)


@dataclass(frozen=True)
class MatchPlan:
    """What `correlator.engine.matching.match_rules` runs; see the module doc for each choice."""

    options: EngineOptions
    lowered_columns: tuple[str, ...]  # fields lowered once per row into a shared column
    inline: frozenset[str]  # fields routed rules lower in place
    index: LiteralIndex
    chunks: tuple[PlannedChunk, ...]

    @property
    def functions(self) -> bool:
        """Whether the SQL calls CitySOC's JVM functions (they must be registered in the session)."""
        return self.options.jvm_functions

    @property
    def lowered_sql(self) -> dict[str, str]:
        """Column name -> SQL of the shared lower-cased columns, added first."""
        return {lowered_column(name): lowered_sql(name, column=False) for name in self.lowered_columns}

    @property
    def bitmap_sql(self) -> dict[str, str]:
        """Column name -> SQL of the literal bitmaps, added after the lower-cased columns."""
        return self.index.bitmap_sql(functions=self.functions)

    @property
    def added_columns(self) -> list[str]:
        """Every column the plan adds (and drops again from the matches)."""
        return [*self.lowered_sql, *self.index.columns]

    def chunk_of(self, rule_id: str) -> PlannedChunk:
        for chunk in self.chunks:
            if rule_id in chunk.rule_ids:
                return chunk
        raise KeyError(rule_id)


def _route_prefilter(chunk: RuleChunk, rendered: Mapping[str, str], *, functions: bool) -> str | None:
    """True for the events some rule of the chunk may match; None when every event qualifies.

    The routes' tests, then the conditions of the unrouted rules folded into the chunk (OR stops at the
    first true test, so those run only on the events no route lets through). With the JVM functions,
    a route's test is `citysoc_in_lower` on the field itself: folding case while reading spares each
    event a `lower()` copy.
    """
    if not chunk.routed:
        return None
    fields = sorted(chunk.routed)
    if functions:
        tests = [function_call("citysoc_in_lower", name, sorted(chunk.routed[name])) for name in fields]
    else:
        tests = [in_list_sql(lowered_sql(name, column=True), sorted(chunk.routed[name])) for name in fields]
    tests += [rendered[rule.id] for rule in chunk.unrouted]
    return any_of(tests)


def _hits(chunk: RuleChunk, rendered: Mapping[str, str], *, flat_max: int) -> str:
    parts: list[str] = []
    for name in sorted(chunk.routed):
        by_value = chunk.routed[name]
        branches = route_branches({value: hits_sql([(rule.id, rendered[rule.id]) for rule in rules])
                                   for value, rules in by_value.items()})
        parts.append(dispatch_sql(lowered_sql(name, column=True), branches, flat_max=flat_max))
    if chunk.unrouted:
        parts.append(hits_sql([(rule.id, rendered[rule.id]) for rule in chunk.unrouted]))
    return parts[0] if len(parts) == 1 else "concat(" + ", ".join(parts) + ")"


def plan_matching(rules: Sequence[CompiledRule], options: EngineOptions) -> MatchPlan:
    """The plan for evaluating the detection `rules` with `options`."""
    if not rules:
        raise EngineError("match_rules needs at least one rule")
    if not options.routing:
        rules = [replace(rule, routing=None) for rule in rules]
    functions = options.jvm_functions
    keys = route_fields(rules)
    inline = routed_only_fields(rules, keys, functions=functions)
    unrouted = [rule for rule in rules if rule.routing is None]
    unrouted_fields = frozenset().union(*(rule.lowered_fields for rule in unrouted))
    columns = frozenset().union(*(rule.lowered_fields for rule in rules), keys) - (inline - unrouted_fields)
    index = LiteralIndex.of(unrouted, min_literals=options.index_min_literals) if options.literal_index \
        else LiteralIndex({})
    bits = index.ids()
    unrouted_spelling = Spelling(columns=columns, bits=bits)
    routed_spelling = Spelling(columns=columns - inline, functions=functions)
    rendered = {rule.id: rule.condition.render(routed_spelling if rule.routing else unrouted_spelling)
                for rule in rules}
    gated = [rule for rule in unrouted if index.covers(rule)]
    gated_ids = {rule.id for rule in gated}
    ungated = [rule for rule in rules if rule.id not in gated_ids]
    # An unrouted rule that reads a bitmap, folded into a routed chunk, would have the prefilter compute
    # that bitmap for every event and the projection again: such rules keep a chunk of their own.
    foldable = not any(literal in bits for rule in ungated if rule.routing is None for literal in rule.literals)
    planned = [PlannedChunk(chunk.rule_ids, routed=bool(chunk.routed), gated=False,
                            prefilter=_route_prefilter(chunk, rendered, functions=functions),
                            hits=_hits(chunk, rendered, flat_max=options.flat_case_max))
               for chunk in plan_chunks(ungated, chunk_size=options.chunk_size,
                                        fold_unrouted=options.fold_unrouted_max if foldable else 0)]
    planned += [PlannedChunk(chunk.rule_ids, routed=False, gated=True,
                             prefilter=index.gate_sql(chunk.unrouted, functions=functions),
                             hits=_hits(chunk, rendered, flat_max=options.flat_case_max))
                for chunk in plan_chunks(gated, chunk_size=options.chunk_size)]
    return MatchPlan(options=options, lowered_columns=tuple(sorted(columns)), inline=inline, index=index,
                     chunks=tuple(planned))
