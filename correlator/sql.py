"""How CitySOC spells Spark SQL: field paths, literals, case-folded text tests, and rule conditions.

Every piece of SQL text the correlator generates for the engine is spelt here, once. A compiled rule's
condition is a `Condition`: SQL text with *terms* left open, the tests whose best spelling depends on
how the engine runs the rule (`correlator.engine.plan`):

- `Lowered(field)`: the field's lower-cased value, read from a column computed once per row
  (`` `_lc__user__name` ``) or lowered inside the rule (`lower(`user`.`name`)`);
- `Contains(field, literal)`: a case-insensitive substring test, spelt `contains(<lowered>, 'lit')`,
  a bit test of the literal index, or one of CitySOC's JVM functions reading the field's bytes;
- `ContainsAny(field, literals)`: an OR of such tests on one field, which a JVM function answers in
  one pass.

`Condition.render(spelling)` writes the SQL for one such choice (`Spelling`); the compiler's plain
choice (every `Lowered` a shared column, every `Contains` a `contains`) is `Condition.sql`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from citysoc.schema import FIELDS, JSON_FIELDS

SCALAR_FIELDS: frozenset[str] = frozenset(name for name, kind in FIELDS.items() if kind != "json")
STRING_KINDS: frozenset[str] = frozenset({"string", "json"})  # compared through their lower-cased value
LOWERED_PREFIX = "_lc__"
LITERAL_PREFIX = "_kw__"
WORD_BITS = 63  # bits per bigint of a literal bitmap: masks stay positive (`MultiContains.BITS`)
EMPTY_ARRAY = "CAST(array() AS array<string>)"
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_READABLE = re.compile(r"^[A-Za-z0-9_@.]+$")
# A term inside a condition's text: NUL, the term's index, NUL. `sql_string` spells NUL as an escape
# and field names come from the schema, so no other SQL text holds a NUL.
_TOKEN = "\x00"


# --- names and literals ----------------------------------------------------------------------------

def quote_path(name: str) -> str:
    """`event.action` -> `` `event`.`action` `` (every part quoted: `@timestamp`, keywords, ...)."""
    parts = [name] if name == "@timestamp" else name.split(".")
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def json_path(keys: Sequence[str]) -> str:
    """A JSONPath for get_json_object; keys that are not identifiers use bracket notation."""
    return "$" + "".join(f".{key}" if _SIMPLE_KEY.match(key) else f"['{key}']" for key in keys)


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash and quote escaped; NUL as a unicode escape)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\u0000")
    return "'" + escaped + "'"


def resolve_field(name: str) -> str | None:
    """Spark SQL reading an ECS field, or None when the event schema has no source for it.

    Struct fields are back-quoted paths; a name below a JSON string field reads it with
    `get_json_object(<field>, '$.<path>')`.
    """
    if name in SCALAR_FIELDS or name in JSON_FIELDS:
        return quote_path(name)
    for json_field in JSON_FIELDS:
        if name.startswith(json_field + "."):
            keys = name[len(json_field) + 1:].split(".")
            return f"get_json_object({quote_path(json_field)}, {sql_string(json_path(keys))})"
    return None


def source_sql(name: str) -> str:
    """`resolve_field`, for a field known to exist; ValueError when the schema has no source for it."""
    source = resolve_field(name)
    if source is None:
        raise ValueError(f"field {name} has no source in the event schema")
    return source


def field_kind(name: str) -> str | None:
    """Storage kind of an ECS field (`string`, `long`, `bool`, `timestamp`, `list<string>`, `json`);
    a sub-field of a JSON document is `json` (text extracted by get_json_object)."""
    if name in FIELDS:
        return FIELDS[name]
    return "json" if resolve_field(name) is not None else None


def lowered_column(name: str) -> str:
    """Name of the top-level column holding `lower(<field>)`: readable when the name allows it."""
    if _READABLE.match(name) and "__" not in name:
        return LOWERED_PREFIX + name.replace("@", "at_").replace(".", "__")
    return LOWERED_PREFIX + "h" + hashlib.sha1(name.encode()).hexdigest()[:16]


def literal_column(name: str) -> str:
    """`_kw__message` for `message`: the column of the literal-index bitmap of a field."""
    return LITERAL_PREFIX + lowered_column(name).removeprefix(LOWERED_PREFIX)


def lowered_sql(name: str, *, column: bool) -> str:
    """The field's lower-cased value: its shared column, or `lower(<field>)` computed in place."""
    return f"`{lowered_column(name)}`" if column else f"lower({source_sql(name)})"


def contains_sql(operand: str, literal: str) -> str:
    """`contains(operand, 'literal')`."""
    return f"contains({operand}, {sql_string(literal)})"


def any_contains_sql(operand: str, literals: Iterable[str]) -> str:
    """`(contains(o, 'a') OR contains(o, 'b') ...)`."""
    return "(" + " OR ".join(contains_sql(operand, literal) for literal in literals) + ")"


def function_call(function: str, name: str, literals: Iterable[str]) -> str:
    """One of CitySOC's JVM functions over a field's own value and literals, e.g.
    `citysoc_contains_any(`message`, 'a', 'b')` (`correlator.engine.jvm`)."""
    return f"{function}({source_sql(name)}, {', '.join(sql_string(literal) for literal in literals)})"


def foldable(literal: str) -> bool:
    """Whether a JVM function may test the literal: Spark hands invalid UTF-8 to them as U+FFFD, which a
    test on bytes would not match."""
    return bool(literal) and "\ufffd" not in literal


def bit_test(name: str, literal_id: int) -> str:
    """Whether bit `literal_id` of the field's literal bitmap is set."""
    word, bit = divmod(literal_id, WORD_BITS)
    return f"((`{literal_column(name)}`[{word}] & {1 << bit}L) != 0)"


def builtin_bitmap(name: str, literals: Sequence[str]) -> str:
    """The literal bitmap of a field from built-ins, one `contains` per literal (codegen-friendly: no
    arrays of ids, no lambdas); null when the value is null."""
    column = f"`{lowered_column(name)}`"
    words = []
    for start in range(0, len(literals), WORD_BITS):
        bits = [f"CASE WHEN {contains_sql(column, literal)} THEN {1 << bit}L ELSE 0L END"
                for bit, literal in enumerate(literals[start:start + WORD_BITS])]
        words.append(" | ".join(bits))
    return f"CASE WHEN {column} IS NOT NULL THEN array({', '.join(words)}) END"


# --- rule conditions -------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Lowered:
    """The field's lower-cased value."""

    field: str


@dataclass(frozen=True, order=True)
class Contains:
    """The literal (lower-cased) occurs in the field's lower-cased value (null for a null value)."""

    field: str
    literal: str


@dataclass(frozen=True, order=True)
class ContainsAny:
    """One of the literals occurs in the field's lower-cased value: an OR of `Contains`."""

    field: str
    literals: tuple[str, ...]


Term = Lowered | Contains | ContainsAny


@dataclass(frozen=True)
class Spelling:
    """How a condition's terms are written for one rule in one plan.

    `columns`: the fields whose lower-cased value is a shared column (others are lowered in place);
    `bits`: literal-index ids of (field, literal) answered by a bitmap bit; `functions`: `Contains` and
    `ContainsAny` read the field itself through CitySOC's JVM functions, folding case while reading.
    """

    columns: frozenset[str] | None = None  # None: every field has a shared column
    bits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    functions: bool = False

    def term(self, term: Term) -> str:
        if isinstance(term, Lowered):
            return lowered_sql(term.field, column=self.columns is None or term.field in self.columns)
        if isinstance(term, Contains):
            literal_id = self.bits.get((term.field, term.literal))
            if literal_id is not None:
                return bit_test(term.field, literal_id)
            if self.functions and foldable(term.literal):
                return function_call("citysoc_contains_any", term.field, [term.literal])
            return contains_sql(self.term(Lowered(term.field)), term.literal)
        if self.functions and all(foldable(literal) for literal in term.literals):
            return function_call("citysoc_contains_any", term.field, term.literals)
        return "(" + " OR ".join(self.term(Contains(term.field, literal)) for literal in term.literals) + ")"


PLAIN = Spelling()


@dataclass(frozen=True)
class Condition:
    """A boolean SQL expression over one event row, with its terms left open (see the module doc)."""

    parts: tuple[str | Term, ...]

    @classmethod
    def parse(cls, text: str, terms: Sequence[Term]) -> Condition:
        """From SQL text in which `token(i)` stands for `terms[i]`."""
        pieces = text.split(_TOKEN)
        if len(pieces) % 2 == 0:
            raise ValueError("unbalanced term token in condition text")
        parts: list[str | Term] = []
        for index, piece in enumerate(pieces):
            if index % 2:
                parts.append(terms[int(piece)])
            elif piece:
                parts.append(piece)
        return cls(tuple(parts))

    @classmethod
    def text(cls, sql: str) -> Condition:
        """A condition without terms."""
        return cls((sql,) if sql else ())

    @staticmethod
    def token(index: int) -> str:
        """What stands for term `index` in the text given to `parse`."""
        return f"{_TOKEN}{index}{_TOKEN}"

    def render(self, spelling: Spelling = PLAIN) -> str:
        return "".join(part if isinstance(part, str) else spelling.term(part) for part in self.parts)

    @property
    def sql(self) -> str:
        """The plain spelling: shared lower-cased columns, `contains` for every substring test."""
        return self.render(PLAIN)

    @property
    def terms(self) -> tuple[Term, ...]:
        return tuple(part for part in self.parts if not isinstance(part, str))

    @property
    def lowered_fields(self) -> frozenset[str]:
        """Fields the condition reads lower-cased (every term reads its field's lower-cased value)."""
        return frozenset(term.field for term in self.terms)

    @property
    def literals(self) -> frozenset[tuple[str, str]]:
        """(field, literal) of every substring test, inside `ContainsAny` too."""
        found: set[tuple[str, str]] = set()
        for term in self.terms:
            if isinstance(term, Contains):
                found.add((term.field, term.literal))
            elif isinstance(term, ContainsAny):
                found.update((term.field, literal) for literal in term.literals)
        return frozenset(found)

    @property
    def contains_groups(self) -> frozenset[tuple[str, tuple[str, ...]]]:
        return frozenset((term.field, term.literals) for term in self.terms if isinstance(term, ContainsAny))


# --- dispatch and hit arrays (the engine's projections) -------------------------------------------

def hits_sql(rules: Sequence[tuple[str, str]]) -> str:
    """array<string> of the ids of the (rule id, condition SQL) pairs whose condition holds (null else)."""
    return "array(" + ", ".join(f"CASE WHEN ({sql}) THEN {sql_string(rule_id)} END" for rule_id, sql in rules) + ")"


def dispatch_sql(key: str, branches: Sequence[tuple[tuple[str, ...], str]], *, flat_max: int) -> str:
    """SQL for `branches[i][1]` where `key` is one of the values `branches[i][0]`, else an empty array.

    Every value appears in one branch, and the branches are sorted: each branch's values are sorted and
    all below the next branch's (`route_branches` gives them so). A binary search with `<` on strings
    (about log2(n) comparisons per event), down to flat `CASE`s of at most `flat_max` branches (where a
    flat CASE is as cheap).
    """
    if not branches:
        return EMPTY_ARRAY
    if len(branches) <= max(1, flat_max):
        cases = " ".join(f"WHEN {key} = {sql_string(values[0])} THEN {hits}" if len(values) == 1
                         else f"WHEN {in_list_sql(key, values)} THEN {hits}" for values, hits in branches)
        return f"CASE {cases} ELSE {EMPTY_ARRAY} END"
    middle = len(branches) // 2
    return (f"CASE WHEN {key} < {sql_string(branches[middle][0][0])} "
            f"THEN {dispatch_sql(key, branches[:middle], flat_max=flat_max)} "
            f"ELSE {dispatch_sql(key, branches[middle:], flat_max=flat_max)} END")


def route_branches(hits_by_value: Mapping[str, str]) -> list[tuple[tuple[str, ...], str]]:
    """`dispatch_sql`'s branches for value -> hits SQL: the values in order, neighbours with the same hits
    in one branch. Each branch's hits are generated code of the chunk's projection: a rule routed on n
    neighbouring values (a service's several program names) appears once, not n times, which keeps the
    projection's methods small enough for the JIT to compile."""
    branches: list[tuple[tuple[str, ...], str]] = []
    for value in sorted(hits_by_value):
        hits = hits_by_value[value]
        if branches and branches[-1][1] == hits:
            branches[-1] = ((*branches[-1][0], value), hits)
        else:
            branches.append(((value,), hits))
    return branches


def in_list_sql(operand: str, values: Iterable[str]) -> str:
    return f"{operand} IN ({', '.join(sql_string(value) for value in values)})"


def any_of(tests: Iterable[str]) -> str:
    """`(a) OR (b) ...`."""
    return " OR ".join(f"({test})" for test in tests)
