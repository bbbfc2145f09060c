"""The literal index: one multi-literal pass per field and event instead of one substring scan per literal.

Rules without a route (keyword rules above all) are evaluated on every event, and SigmaHQ's linux
keyword rules carry about a hundred `contains(_lc__message, '...')` between them. `LiteralIndex.of`
collects, per normalised field, the distinct literals that those rules test with `contains`
(`CompiledRule.literals`, recorded by the backend: plain `contains`, keywords, and the guard literal of
every `LIKE`). `add_literal_columns` adds, once per row, `_kw__<field>`: a bitmap (array<bigint>, 63 bits a word) of
the field's literals that occur in the lower-cased value (null when the value is null).
`LiteralIndex.rewrite` then turns `contains(<column>, 'literal')` into a bit test,
`((_kw__<field>[word] & mask) != 0)`: the same three-valued result; a LIKE or regex behind a guard
literal runs only where the literal occurs. Unrouted rules that need one of the indexed literals
(`CompiledRule.required_literals`) are evaluated only on the events whose bitmap has one of them
(`literal_gate`, `citysoc_contains_any`): for keyword rules, a small fraction of the events.

The pass is CitySOC's SQL function `citysoc_multi_contains` (Aho-Corasick in Java, `correlator/jvm`): a
Catalyst expression that reads the field's UTF-8 bytes and folds ASCII case while reading, so neither a
lower-cased copy of the text nor a Java string is made per row, and no Python runs per row. The same
functions answer the routed rules' `contains` (`rewrite_contains_groups`, `fold_contains`) and the route
prefilters (`citysoc_in_lower`). Without a JDK to build them, `_kw__<field>` is a built-in expression with
one `contains` per literal on the lower-cased column: slower, same results (`mode="builtin"`;
`tests/correlator/test_literal_index.py` checks both against the plain expressions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from sigma.types import SpecialChars

from correlator.backend import (
    NORMALIZED_PREFIX,
    STRING_KINDS,
    contains_group_sql,
    contains_sql,
    field_kind,
    normalized_column,
    sql_string,
    string_match,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from correlator.compiler import CompiledRule

LiteralIndexMode = Literal["auto", "jvm", "builtin", "off"]
LITERAL_PREFIX = "_kw__"
WORD_BITS = 63  # bits per bigint of the bitmap: masks stay positive (`MultiContains.BITS`)
# A field is indexed when the rules test at least this many distinct literals on it; below, the
# direct `contains` calls are as cheap as one pass plus the array.
INDEX_MIN_LITERALS = 3


def literal_column(field_name: str) -> str:
    """`_kw__message` for `message`: the column of literal ids of a field's normalised value."""
    return LITERAL_PREFIX + normalized_column(field_name).removeprefix(NORMALIZED_PREFIX)


def _indexable(literal: str) -> bool:
    # Spark hands a Java UDF invalid UTF-8 as U+FFFD, which `contains` on bytes would not match.
    return bool(literal) and "\ufffd" not in literal


@dataclass(frozen=True)
class LiteralIndex:
    """Per indexed field, its literals in id order (id = position)."""

    literals: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, rules: Iterable[CompiledRule], *, min_literals: int = INDEX_MIN_LITERALS) -> LiteralIndex:
        by_field: dict[str, set[str]] = {}
        for rule in rules:
            for field_name, literal in rule.literals:
                if _indexable(literal):
                    by_field.setdefault(field_name, set()).add(literal)
        return cls({name: tuple(sorted(values)) for name, values in sorted(by_field.items())
                    if len(values) >= min_literals})

    @property
    def columns(self) -> list[str]:
        return [literal_column(name) for name in self.literals]

    def ids(self, field_name: str) -> dict[str, int]:
        return {literal: index for index, literal in enumerate(self.literals.get(field_name, ()))}

    def rewrite(self, rule: CompiledRule) -> CompiledRule:
        """The rule with each indexed `contains(<normalised column>, 'literal')` answered by the index.

        `contains_sql` is the backend's only spelling of these tests, and a SQL string literal never
        holds an unescaped quote, so the text replaced is exactly that test and nothing inside a literal.
        """
        expression = rule.expression
        for field_name, literal in sorted(rule.literals):
            literal_id = self.ids(field_name).get(literal)
            if literal_id is None:
                continue
            test = contains_sql(f"`{normalized_column(field_name)}`", literal)
            expression = expression.replace(test, self.bit_test(field_name, literal_id))
        return rule if expression == rule.expression else replace(rule, expression=expression)

    @staticmethod
    def bit_test(field_name: str, literal_id: int) -> str:
        word, bit = divmod(literal_id, WORD_BITS)
        return f"((`{literal_column(field_name)}`[{word}] & {1 << bit}L) != 0)"

    def covers(self, rule: CompiledRule) -> bool:
        """True when the rule can only match an event in which one of its indexed literals occurs."""
        required = rule.required_literals
        return bool(required) and all(literal in self.ids(name) for name, literal in required or ())

    def required(self, rules: Iterable[CompiledRule]) -> dict[str, tuple[str, ...]]:
        """Per field, the literals some of `rules` (all `covers`ed) require."""
        wanted: dict[str, set[str]] = {}
        for rule in rules:
            if not self.covers(rule):
                raise ValueError(f"rule {rule.id} has no required literal in the index")
            for name, literal in rule.required_literals or ():
                wanted.setdefault(name, set()).add(literal)
        return {name: tuple(sorted(values)) for name, values in sorted(wanted.items())}


Requirement = frozenset[tuple[str, str]]


def required_literals(node: Any, *, raw_field: str, recorded: AbstractSet[tuple[str, str]]) -> Requirement | None:
    """(field, literal) pairs such that the condition `node` is true only if one of the literals occurs in
    its field's normalised value; None when there is no such set.

    A leaf requires the literal the backend tests it with (`string_match`: a `contains`, or the guard of a
    `LIKE`), only if that test went to the normalised column (`recorded` is the backend's
    `literals` for the rule). AND requires what one child requires (the child whose shortest literal is
    longest: the rarest, usually), OR what all children require together, NOT nothing.
    """
    from sigma.conditions import (
        ConditionAND,
        ConditionFieldEqualsValueExpression,
        ConditionOR,
        ConditionValueExpression,
    )
    from sigma.types import SigmaString

    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        keyword = isinstance(node, ConditionValueExpression)
        field_name = node.field if isinstance(node, ConditionFieldEqualsValueExpression) else raw_field
        value = node.value
        if type(value) is not SigmaString or field_kind(field_name) not in STRING_KINDS:
            return None  # cased, regex, numbers, ... or a list field (tested element by element)
        parts: list[str | SpecialChars] = []
        for part in value.s:
            if not isinstance(part, str | SpecialChars):
                return None  # an unexpanded placeholder
            parts.append(part.lower() if isinstance(part, str) else part)
        _, literals = string_match("`_`", parts, contains=keyword)
        needed = frozenset((field_name, literal) for literal in literals)
        return needed if needed and needed <= recorded else None
    if isinstance(node, ConditionAND):
        options = [r for r in (required_literals(child, raw_field=raw_field, recorded=recorded)
                               for child in node.args) if r]
        return max(options, key=lambda r: (min(len(lit) for _, lit in r), -len(r)), default=None)
    if isinstance(node, ConditionOR):
        united: set[tuple[str, str]] = set()
        for child in node.args:
            required = required_literals(child, raw_field=raw_field, recorded=recorded)
            if not required:
                return None
            united |= required
        return frozenset(united) or None
    return None  # NOT, null, ...


def use_jvm(spark: SparkSession, mode: LiteralIndexMode) -> bool:
    """Whether `mode` asks for CitySOC's JVM functions here ("jvm"; "auto" when the jar is in the session)."""
    from correlator.jvm import functions_available

    return mode == "jvm" or (mode == "auto" and functions_available(spark))


def add_literal_columns(events: DataFrame, index: LiteralIndex, *, mode: LiteralIndexMode = "auto") -> DataFrame:
    """Add `literal_column(f)` for each indexed field (after `add_normalized_columns`).

    With the JVM functions it reads the field itself, folding case while it reads (`folded_call`):
    the normalised column is then computed only where a rule still reads it."""
    from pyspark.sql import functions as F

    if not index.literals or mode == "off":
        return events
    jvm_functions = use_jvm(events.sparkSession, mode)
    columns: dict[str, Column] = {}
    for field_name, literals in index.literals.items():
        if jvm_functions:
            columns[literal_column(field_name)] = F.expr(folded_call(events.sparkSession, "citysoc_multi_contains",
                                                                     field_name, literals))
        else:  # one `contains` per literal: no JDK to build the functions, or asked for
            columns[literal_column(field_name)] = F.expr(builtin_bitmap(field_name, literals))
    return events.withColumns(columns)


def folded_call(spark: SparkSession, function: str, field_name: str, literals: Iterable[str]) -> str:
    """SQL calling one of CitySOC's functions over lower-cased text (`correlator.jvm.register_functions`)
    on the field's own value, e.g. `citysoc_contains_any(`message`, 'a', 'b')`: the same answer as the
    test on `lower(<field>)`, read from Spark's bytes without the lower-cased copy."""
    from correlator.jvm import register_functions
    from correlator.normalize import source_sql

    register_functions(spark)
    return f"{function}({source_sql(field_name)}, {', '.join(sql_string(literal) for literal in literals)})"


def rewrite_contains_groups(spark: SparkSession, rule: CompiledRule, *,
                            mode: LiteralIndexMode = "auto") -> CompiledRule:
    """The rule with each OR of `contains` on one field (`contains_group_sql`) answered by one
    `citysoc_contains_any` pass over the value (case folded while read), stopping at the first literal found.

    For the rules the literal index does not serve (routed rules): sshd's error rule tests eleven
    substrings of every sshd message. Same three-valued result: null for a null value, else whether
    one of the literals occurs. Only with the JVM functions (`mode` "auto" with the jar, or "jvm").
    """
    if not rule.contains_groups or not use_jvm(spark, mode):
        return rule
    expression = rule.expression
    for field_name, literals in sorted(rule.contains_groups):
        if not all(_indexable(literal) for literal in literals):
            continue
        column = f"`{normalized_column(field_name)}`"
        expression = expression.replace(contains_group_sql(column, literals),
                                        folded_call(spark, "citysoc_contains_any", field_name, literals))
    return rule if expression == rule.expression else replace(rule, expression=expression)


def fold_contains(spark: SparkSession, rule: CompiledRule) -> CompiledRule:
    """The rule with each `contains(<normalised column>, 'literal')` it records (`CompiledRule.literals`)
    as `citysoc_contains_any(<field>, 'literal')`: the same three-valued test, read from the field's
    bytes with case folded while reading, so the rule needs no lower-cased copy of the field for it.

    For routed rules, with the JVM functions: each OR of `contains` on one field first becomes one
    pass (`rewrite_contains_groups`); sshd's rules test `message` this way on every sshd line.
    """
    rule = rewrite_contains_groups(spark, rule, mode="jvm")
    expression = rule.expression
    for field_name, literal in sorted(rule.literals):
        if _indexable(literal):
            expression = expression.replace(contains_sql(f"`{normalized_column(field_name)}`", literal),
                                            folded_call(spark, "citysoc_contains_any", field_name, [literal]))
    return rule if expression == rule.expression else replace(rule, expression=expression)


def literal_gate(spark: SparkSession, index: LiteralIndex, rules: Iterable[CompiledRule], *,
                 mode: LiteralIndexMode = "auto") -> Column:
    """True for the events some of `rules` (all `covers`ed) may match: one of their required literals
    occurs. It reads the fields, not the bitmap, so Spark evaluates the bitmap (and the rules) only
    for the events that pass: one pass that stops at the first literal found."""
    from pyspark.sql import functions as F

    jvm_functions = use_jvm(spark, mode)
    tests: list[str] = []
    for field_name, literals in index.required(rules).items():
        if jvm_functions:
            tests.append(folded_call(spark, "citysoc_contains_any", field_name, literals))
        else:
            column = f"`{normalized_column(field_name)}`"
            tests.append(" OR ".join(contains_sql(column, literal) for literal in literals))
    if not tests:
        raise ValueError("no rules to gate")
    return F.expr(" OR ".join(f"({test})" for test in tests))


def builtin_bitmap(field_name: str, literals: tuple[str, ...]) -> str:
    """The `MultiContains` bitmap from built-ins (codegen-friendly: no arrays of ids, no lambdas)."""
    column = f"`{normalized_column(field_name)}`"
    words = []
    for start in range(0, len(literals), WORD_BITS):
        bits = [f"CASE WHEN {contains_sql(column, literal)} THEN {1 << bit}L ELSE 0L END"
                for bit, literal in enumerate(literals[start:start + WORD_BITS])]
        words.append(" | ".join(bits))
    return f"CASE WHEN {column} IS NOT NULL THEN array({', '.join(words)}) END"

