"""The literal index: one multi-literal pass per field and event instead of one substring scan per literal.

Rules without a route (keyword rules above all) are evaluated on every event, and SigmaHQ's linux
keyword rules carry about a hundred substring tests of `message` between them. `LiteralIndex.of`
collects, per field, the distinct literals those rules test (the `Contains`/`ContainsAny` terms of
their conditions: plain `contains`, keywords, and the guard literal of every `LIKE`). The engine adds,
once per row, a bitmap column of the field's literals that occur in its lower-cased value
(`bitmap_sql`), and spells each indexed substring test as a bit test (`correlator.sql.Spelling`): the
same three-valued result. Rules that need one of the indexed literals (`CompiledRule.required_literals`)
run only on the events in which one occurs (`gate_sql`): for keyword rules, a small fraction.

With CitySOC's JVM functions the bitmap is `citysoc_multi_contains` (Aho-Corasick over the field's UTF-8
bytes, case folded while reading: no lower-cased copy, no Java string per row); without them, one
built-in `contains` per literal on the lower-cased column. Both give the same bitmap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from correlator.model import CompiledRule
from correlator.sql import any_of, builtin_bitmap, contains_sql, foldable, function_call, literal_column, lowered_sql


@dataclass(frozen=True)
class LiteralIndex:
    """Per indexed field, its literals in id order (id = position)."""

    literals: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, rules: Iterable[CompiledRule], *, min_literals: int) -> LiteralIndex:
        by_field: dict[str, set[str]] = {}
        for rule in rules:
            for field_name, literal in rule.literals:
                if foldable(literal):
                    by_field.setdefault(field_name, set()).add(literal)
        return cls({name: tuple(sorted(values)) for name, values in sorted(by_field.items())
                    if len(values) >= min_literals})

    @property
    def columns(self) -> list[str]:
        return [literal_column(name) for name in self.literals]

    def ids(self) -> dict[tuple[str, str], int]:
        """(field, literal) -> its bit in the field's bitmap."""
        return {(name, literal): index for name, literals in self.literals.items()
                for index, literal in enumerate(literals)}

    def covers(self, rule: CompiledRule) -> bool:
        """True when the rule can only match an event in which one of its indexed literals occurs."""
        required = rule.required_literals
        return bool(required) and all(literal in self.literals.get(name, ()) for name, literal in required or ())

    def required(self, rules: Iterable[CompiledRule]) -> dict[str, tuple[str, ...]]:
        """Per field, the literals some of `rules` (all `covers`ed) require."""
        wanted: dict[str, set[str]] = {}
        for rule in rules:
            if not self.covers(rule):
                raise ValueError(f"rule {rule.id} has no required literal in the index")
            for name, literal in rule.required_literals or ():
                wanted.setdefault(name, set()).add(literal)
        return {name: tuple(sorted(values)) for name, values in sorted(wanted.items())}

    def bitmap_sql(self, *, functions: bool) -> dict[str, str]:
        """Column name -> SQL of each indexed field's bitmap (after the lower-cased columns)."""
        if functions:
            return {literal_column(name): function_call("citysoc_multi_contains", name, literals)
                    for name, literals in self.literals.items()}
        return {literal_column(name): builtin_bitmap(name, literals) for name, literals in self.literals.items()}

    def gate_sql(self, rules: Iterable[CompiledRule], *, functions: bool) -> str:
        """True for the events some of `rules` (all `covers`ed) may match: one of their required literals
        occurs. It reads the fields, not the bitmap, so Spark evaluates the bitmap (and the rules) only
        for the events that pass: one pass that stops at the first literal found."""
        tests: list[str] = []
        for name, literals in self.required(rules).items():
            if functions:
                tests.append(function_call("citysoc_contains_any", name, literals))
            else:
                column = lowered_sql(name, column=True)
                tests.append(" OR ".join(contains_sql(column, literal) for literal in literals))
        if not tests:
            raise ValueError("no rules to gate")
        return any_of(tests)
