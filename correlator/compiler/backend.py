"""Sigma -> Spark SQL for our event schema, with Sigma's matching semantics on open-source Spark.

`CitySocSparkBackend` keeps pySigma-databricks' plumbing (condition tree, precedence, quoting) and
replaces every value comparison, so that one Sigma rule means here what the Sigma specification says:

- field names resolve against `citysoc.schema`: struct fields become back-quoted struct paths, fields
  below a JSON string field `get_json_object(<field>, '$.<path>')`; any other name raises
  `SigmaFeatureNotSupportedByBackendError("field X has no source in <dataset>")`;
- strings match case-insensitively against the field's lower-cased value, the literal lower-cased at
  compile time; the value and every substring test on it are left open as terms of the rule's
  `Condition` (`correlator.sql`), which the engine spells as its plan decides. `|cased`, `|re` and
  non-string fields keep their own form;
- wildcards `*`/`?` become `startswith`/`endswith`/`contains` or `LIKE`; escaped `\\*` stays literal;
- every `NOT` is two-valued (`NOT coalesce(x, false)`): a condition on a field the event lacks is
  false, so its negation is true (SQL's NULL would drop the row);
- `|cidr` is a range check from built-ins for IPv4 and IPv6 (Databricks' `ip_cidr_contains` does not
  exist in open-source Spark); `|lt`... compare numbers (`try_cast` on strings); list fields match if
  any element matches (`exists`).

The semantics section of `correlator/README.md` lists what each modifier compiles to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, IPv6Network
from typing import Any, ClassVar

from sigma.backends.databricks.databricks import DatabricksBackend
from sigma.conditions import (
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.deferred import DeferredQueryExpression
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from correlator.compiler.regex_literals import required_literal
from correlator.sql import (
    STRING_KINDS,
    Condition,
    Contains,
    ContainsAny,
    Lowered,
    Term,
    contains_sql,
    field_kind,
    resolve_field,
    sql_string,
)

# The Sigma specification names UTF-16LE `utf16le` (alias `wide`); pySigma 1.5 knows only `wide`.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_REGEX = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_COMPARE_SQL = {CompareOperators.LT: "<", CompareOperators.LTE: "<=", CompareOperators.GT: ">",
                CompareOperators.GTE: ">="}
_TIME_PARTS = {TimestampPart.MINUTE: "minute", TimestampPart.HOUR: "hour", TimestampPart.DAY: "dayofmonth",
               TimestampPart.WEEK: "weekofyear", TimestampPart.MONTH: "month", TimestampPart.YEAR: "year"}
_REGEX_FLAGS = {SigmaRegularExpressionFlag.IGNORECASE: "iu", SigmaRegularExpressionFlag.MULTILINE: "m",
                SigmaRegularExpressionFlag.DOTALL: "s"}


def ipv4_number(column: str) -> str:
    """An IPv4 string column as a bigint (null when it is not a dotted quad)."""
    octets = [f"cast(split({column}, '\\\\.')[{i}] as bigint)" for i in range(4)]
    number = f"(({octets[0]} * 16777216) + ({octets[1]} * 65536) + ({octets[2]} * 256) + {octets[3]})"
    return f"CASE WHEN {column} rlike {sql_string(IPV4_REGEX)} THEN {number} END"


def ipv4_cidr_expression(column: str, network: IPv4Network) -> str:
    low, high = int(network.network_address), int(network.broadcast_address)
    # coalesce: a non-IPv4 value must be "not in range", also under NOT (null would drop the row there)
    return f"coalesce(({ipv4_number(column)}) BETWEEN {low} AND {high}, false)"


def ipv6_hex(column: str) -> str:
    """An IPv6 string column as its 32 lower-case hex digits (null when it is not plain IPv6 text).

    `::` is expanded with `array_repeat`; a zone index (`%eth0`) is dropped. Fixed-width hex strings
    sort like the numbers they spell, so a network is a `BETWEEN` on strings.
    """
    address = f"lower(split({column}, '%')[0])"
    halves = f"split({address}, '::', -1)"
    head = f"CASE WHEN {halves}[0] = '' THEN array() ELSE split({halves}[0], ':') END"
    tail = f"CASE WHEN {halves}[1] = '' THEN array() ELSE split({halves}[1], ':') END"
    groups = (f"CASE WHEN size({halves}) = 1 THEN split({address}, ':') "
              f"WHEN size({halves}) = 2 AND size({head}) + size({tail}) <= 7 THEN "
              f"concat({head}, array_repeat('0', 8 - size({head}) - size({tail})), {tail}) END")
    valid = f"(size({groups}) = 8 AND forall({groups}, g -> g rlike '^[0-9a-f]{{1,4}}$'))"
    return f"CASE WHEN {valid} THEN array_join(transform({groups}, g -> lpad(g, 4, '0')), '') END"


def ipv6_cidr_expression(column: str, network: IPv6Network) -> str:
    low = f"{int(network.network_address):032x}"
    high = f"{int(network.broadcast_address):032x}"
    return f"coalesce(({ipv6_hex(column)}) BETWEEN '{low}' AND '{high}', false)"


def _like_pattern(parts: Sequence[str | SpecialChars]) -> str:
    out: list[str] = []
    for part in parts:
        if part == SpecialChars.WILDCARD_MULTI:
            out.append("%")
        elif part == SpecialChars.WILDCARD_SINGLE:
            out.append("_")
        else:
            out.append(str(part).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
    return "".join(out)


# An OR of at least this many `contains` on one field becomes one `ContainsAny` term.
CONTAINS_GROUP_MIN = 4


# A LIKE with a literal segment at least this long is guarded by `contains(operand, segment)`.
LIKE_GUARD_MIN = 3


def string_match(operand: str, parts: Sequence[str | SpecialChars], *, contains: bool = False,
                 spell_contains: Callable[[str, str], str] = contains_sql) -> tuple[str, list[str]]:
    """SQL matching `operand` against a Sigma string (literal parts and wildcards), as written, and the
    literals it tests for as substrings (spelt `spell_contains(operand, literal)`).

    Plain strings compare with `=`, a single leading/trailing `*` uses startswith/endswith/contains,
    anything else `LIKE` (Spark's `%` and `_` also match line breaks), guarded by a `contains` of its
    longest literal segment, which every match contains: the pattern (a regex in Spark) then only runs
    on the rows that have that segment. `contains` wraps the value in `*...*` (keyword search).
    """
    merged: list[str | SpecialChars] = []
    for part in ([SpecialChars.WILDCARD_MULTI] if contains else []) + list(parts) + \
            ([SpecialChars.WILDCARD_MULTI] if contains else []):
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif not (part == SpecialChars.WILDCARD_MULTI and merged and merged[-1] == SpecialChars.WILDCARD_MULTI):
            merged.append(part)
    star = SpecialChars.WILDCARD_MULTI
    literals = [p for p in merged if isinstance(p, str)]
    specials = [p for p in merged if not isinstance(p, str)]
    if not specials:
        return f"{operand} = {sql_string(''.join(literals))}", []
    if merged == [star]:
        return f"({operand} IS NOT NULL)", []
    if len(merged) == 2 and merged[1] == star and isinstance(merged[0], str):
        return f"startswith({operand}, {sql_string(merged[0])})", []
    if len(merged) == 2 and merged[0] == star and isinstance(merged[1], str):
        return f"endswith({operand}, {sql_string(merged[1])})", []
    if len(merged) == 3 and merged[0] == star and merged[2] == star and isinstance(merged[1], str):
        return spell_contains(operand, merged[1]), [merged[1]]
    like = f"{operand} LIKE {sql_string(_like_pattern(merged))}"
    guard = max(literals, key=len, default="")
    if len(guard) < LIKE_GUARD_MIN:
        return like, []
    return f"({spell_contains(operand, guard)} AND {like})", [guard]


def _followed_by(test: str) -> Callable[[str], str]:
    """A predicate writing `<operand> <test>`."""
    return lambda operand: f"{operand} {test}"


class CitySocSparkBackend(DatabricksBackend):
    """Spark SQL for one log source route: knows its datasets (for messages) and keyword column."""

    name: ClassVar[str] = "citysoc-spark"
    optimize_or_as_regex: ClassVar[bool] = False  # ORs of contains stay `contains` on the normalised column

    def __init__(self, processing_pipeline: Any = None, *, datasets: Sequence[str] = (),
                 raw_log_field: str = "message", **kwargs: Any) -> None:
        super().__init__(processing_pipeline, raw_log_field=raw_log_field, **kwargs)
        self.datasets = tuple(datasets)
        self._terms: list[Term] = []  # the terms of the rule being converted (`Condition.parse`)

    def convert_rule(self, rule: SigmaRule, output_format: str | None = None, callback: Any = None) -> list[Any]:
        self._terms = []
        return super().convert_rule(rule, output_format, callback)

    def condition(self, query: str) -> Condition:
        """The last converted rule's query as a `Condition` (its terms left open)."""
        return Condition.parse(query, self._terms)

    def _term(self, term: Term) -> str:
        """The token standing for `term` in the query text."""
        if term not in self._terms:
            self._terms.append(term)
        return Condition.token(self._terms.index(term))

    def _lowered_field(self, operand: str) -> str | None:
        """The field when `operand` is the token of its lower-cased value, else None."""
        for index, term in enumerate(self._terms):
            if isinstance(term, Lowered) and operand == Condition.token(index):
                return term.field
        return None

    def _spell_contains(self, operand: str, literal: str) -> str:
        """A substring test: a `Contains` term on a lower-cased field, else plain `contains`."""
        field_name = self._lowered_field(operand)
        if field_name is None:
            return contains_sql(operand, literal)
        return self._term(Contains(field_name, literal))

    # --- fields -------------------------------------------------------------------------------------

    def escape_and_quote_field(self, field_name: str) -> str:
        resolved = resolve_field(field_name)
        if resolved is None:
            where = ", ".join(self.datasets) or "any dataset"
            raise SigmaFeatureNotSupportedByBackendError(f"field {field_name} has no source in {where}")
        return resolved

    def _kind(self, field_name: str) -> str:
        self.escape_and_quote_field(field_name)  # raises for an unknown field
        return field_kind(field_name) or "string"

    def _match(self, field_name: str, predicate: Callable[[str], str], *, lowered: bool) -> str:
        """Apply `predicate(operand) -> sql` to a field: its lower-cased value, a cast, or every list element."""
        kind = self._kind(field_name)
        column = self.escape_and_quote_field(field_name)
        if kind == "list<string>":
            element = "lower(_e)" if lowered else "_e"
            return f"coalesce(exists({column}, _e -> {predicate(element)}), false)"
        if kind in STRING_KINDS:
            return predicate(self._term(Lowered(field_name)) if lowered else column)
        text = f"cast({column} as string)"
        return predicate(f"lower({text})" if lowered else text)

    def _match_string(self, field_name: str, parts: Sequence[str | SpecialChars], *, lowered: bool,
                      contains: bool = False) -> str:
        """`string_match` on a field; its substring tests on a lower-cased field are `Contains` terms."""
        def predicate(operand: str) -> str:
            return string_match(operand, parts, contains=contains, spell_contains=self._spell_contains)[0]
        return self._match(field_name, predicate, lowered=lowered)

    # --- strings ------------------------------------------------------------------------------------

    @staticmethod
    def _parts(value: SigmaString, *, lowered: bool) -> list[str | SpecialChars]:
        parts: list[str | SpecialChars] = []
        for part in value.s:
            if isinstance(part, Placeholder):
                raise SigmaFeatureNotSupportedByBackendError(
                    f"placeholder %{part.name}% has no configured values (configure it with "
                    "RuleCompiler(placeholders={...}))")
            parts.append(part.lower() if lowered and isinstance(part, str) else part)
        return parts

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        if not isinstance(cond.value, SigmaString):
            raise TypeError(f"expected a string, got {type(cond.value).__name__}")
        return self._match_string(cond.field, self._parts(cond.value, lowered=True), lowered=True)

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> str:
        if not isinstance(cond.value, SigmaCasedString):
            raise TypeError(f"expected a cased string, got {type(cond.value).__name__}")
        return self._match_string(cond.field, self._parts(cond.value, lowered=False), lowered=False)

    def convert_condition_val_str(self, cond: Any, state: ConversionState) -> str:
        """Keywords: a case-insensitive substring of the route's raw column (wildcards allowed inside)."""
        value = cond.value
        if not isinstance(value, SigmaString):
            raise TypeError(f"expected a string keyword, got {type(value).__name__}")
        lowered = not isinstance(value, SigmaCasedString)
        return self._match_string(self.raw_log_field, self._parts(value, lowered=lowered), lowered=lowered,
                                  contains=True)

    def convert_condition_val_num(self, cond: Any, state: ConversionState) -> str:
        return self._match_string(self.raw_log_field, [str(cond.value)], lowered=True, contains=True)

    def convert_condition_as_in_expression(self, cond: Any, state: ConversionState) -> str:
        raise NotImplementedError("IN lists are built by convert_condition_or")

    def _plain_contains(self, arg: Any) -> tuple[str, str] | None:
        """(field, lower-cased literal) of a case-insensitive `field|contains: literal` on a string field,
        or of a keyword (a substring of the raw log field); None for anything else."""
        if isinstance(arg, ConditionFieldEqualsValueExpression):
            field_name, keyword = arg.field, False
        elif isinstance(arg, ConditionValueExpression):
            field_name, keyword = self.raw_log_field, True
        else:
            return None
        value = arg.value
        if type(value) is not SigmaString or value.contains_placeholder() or field_kind(field_name) not in STRING_KINDS:
            return None
        parts = [part.lower() if isinstance(part, str) else part for part in value.s
                 if isinstance(part, str | SpecialChars)]  # no placeholder (checked above)
        sql, literals = string_match("`_`", parts, contains=keyword)
        return (field_name, literals[0]) if len(literals) == 1 and sql == contains_sql("`_`", literals[0]) else None

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        """Plain case-insensitive equalities on one string field become one `IN` (a hash set beyond 10);
        `CONTAINS_GROUP_MIN` or more plain `contains` on one field become one `ContainsAny` term."""
        groups: dict[str, list[str]] = {}
        contained: dict[str, list[tuple[str, Any]]] = {}
        rest: list[Any] = []
        for arg in cond.args:
            found = self._plain_contains(arg)
            if found is not None:
                contained.setdefault(found[0], []).append((found[1], arg))
            elif (isinstance(arg, ConditionFieldEqualsValueExpression) and type(arg.value) is SigmaString
                    and not arg.value.contains_special() and not arg.value.contains_placeholder()
                    and field_kind(arg.field) in STRING_KINDS):
                groups.setdefault(arg.field, []).append(arg.value.to_plain().lower())
            else:
                rest.append(arg)
        grouped = {name: list(dict.fromkeys(literal for literal, _ in pairs))
                   for name, pairs in contained.items() if len(pairs) >= CONTAINS_GROUP_MIN}
        for name, pairs in contained.items():
            if name not in grouped:
                rest.extend(arg for _, arg in pairs)
        if not grouped and not any(len(values) > 1 for values in groups.values()):
            return super().convert_condition_or(cond, state)
        terms: list[str] = []
        for field_name, values in groups.items():
            unique = list(dict.fromkeys(values))
            test = f"= {sql_string(unique[0])}" if len(unique) == 1 else \
                f"IN ({', '.join(sql_string(v) for v in unique)})"
            terms.append(self._match(field_name, _followed_by(test), lowered=True))
        for field_name, literals in grouped.items():
            terms.append(self._term(ContainsAny(field_name, tuple(literals))))
        for arg in rest:
            converted = (self.convert_condition(arg, state) if self.compare_precedence(cond, arg)
                         else self.convert_condition_group(arg, state))
            if converted is not None and not isinstance(converted, DeferredQueryExpression):
                terms.append(converted)
        return " OR ".join(terms)

    # --- other value types --------------------------------------------------------------------------

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        if not isinstance(cond.value, SigmaNumber):
            raise TypeError(f"expected a number, got {type(cond.value).__name__}")
        return self._equals_typed(cond.field, "long", str(cond.value.number), str(cond.value.number))

    def convert_condition_field_eq_val_timestamp_part(self, cond: ConditionFieldEqualsValueExpression,
                                                      state: ConversionState) -> str:
        """`|hour`, `|day`, ...: the part of the field's time (UTC) equals the number."""
        value = cond.value
        if not isinstance(value, SigmaTimestampPart):
            raise TypeError(f"expected a timestamp part, got {type(value).__name__}")
        moment = self._typed_operand(cond.field, "timestamp", "timestamp")
        return f"coalesce({_TIME_PARTS[value.timestamp_part]}({moment}) = {value.number}, false)"

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        if not isinstance(cond.value, SigmaBool):
            raise TypeError(f"expected a boolean, got {type(cond.value).__name__}")
        text = str(cond.value.boolean).lower()
        return self._equals_typed(cond.field, "bool", text, text)

    def _typed_operand(self, field_name: str, kind: str, sql_type: str) -> str:
        """The field itself when the schema stores it as `kind`, else `try_cast(field as sql_type)`."""
        column = self.escape_and_quote_field(field_name)
        return column if self._kind(field_name) == kind else f"try_cast({column} as {sql_type})"

    def _equals_typed(self, field_name: str, kind: str, sql_literal: str, text: str) -> str:
        """A number or boolean: compared natively on a field of that `kind`, else as text."""
        if self._kind(field_name) == kind:
            return f"{self.escape_and_quote_field(field_name)} = {sql_literal}"
        return self._match(field_name, lambda operand: f"{operand} = {sql_string(text)}", lowered=True)

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> str:
        if not isinstance(cond.value, SigmaRegularExpression):
            raise TypeError(f"expected a regular expression, got {type(cond.value).__name__}")
        return self._match_regex(cond.field, cond.value)

    def convert_condition_val_re(self, cond: Any, state: ConversionState) -> str:
        return self._match_regex(self.raw_log_field, cond.value)

    def _match_regex(self, field_name: str, value: SigmaRegularExpression) -> str:
        """`f rlike 're'`; on a string field guarded by `contains(f, literal)` when a case-sensitive
        regex requires a literal (`correlator.regex_literals`), so the regex runs only where it can match."""
        regex = sql_string(self._regex(value))
        guard = None
        if self._kind(field_name) == "string" and SigmaRegularExpressionFlag.IGNORECASE not in value.flags:
            guard = required_literal(str(value.regexp))

        def predicate(operand: str) -> str:
            if guard is None:
                return f"{operand} rlike {regex}"
            return f"({contains_sql(operand, guard)} AND {operand} rlike {regex})"
        return self._match(field_name, predicate, lowered=False)

    @staticmethod
    def _regex(value: SigmaRegularExpression) -> str:
        """Java regex with Sigma's flags (i also folds non-ASCII case); rlike searches, unanchored."""
        flags = "".join(sorted(_REGEX_FLAGS[flag] for flag in value.flags))
        return (f"(?{flags})" if flags else "") + str(value.regexp)

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        cidr = cond.value
        if not isinstance(cidr, SigmaCIDRExpression):
            raise TypeError(f"expected a CIDR expression, got {type(cidr).__name__}")
        network = cidr.network

        def predicate(operand: str) -> str:
            if isinstance(network, IPv4Network):
                return ipv4_cidr_expression(operand, network)
            return ipv6_cidr_expression(operand, network)
        return self._match(cond.field, predicate, lowered=False)

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> str:
        """`|lt`, `|gte`, ...: numeric; a string field compares as a number, non-numbers never match."""
        value = cond.value
        if not isinstance(value, SigmaCompareExpression):
            raise TypeError(f"expected a comparison, got {type(value).__name__}")
        number = self._typed_operand(cond.field, "long", "double")
        return f"coalesce({number} {_COMPARE_SQL[value.op]} {value.number.number}, false)"

    def convert_condition_field_eq_field(self, cond: ConditionFieldEqualsValueExpression,
                                         state: ConversionState) -> str:
        """`|fieldref`: the two fields' values compare like strings (case-insensitively)."""
        ref = cond.value
        if not isinstance(ref, SigmaFieldReference):
            raise TypeError(f"expected a field reference, got {type(ref).__name__}")
        if self._kind(ref.field) == "list<string>":
            raise SigmaFeatureNotSupportedByBackendError(f"fieldref to the list field {ref.field} is not supported")
        other = self._match(ref.field, lambda operand: operand, lowered=True)

        def predicate(operand: str) -> str:
            if ref.starts_with and ref.ends_with:
                return f"contains({operand}, {other})"
            if ref.starts_with:
                return f"startswith({operand}, {other})"
            if ref.ends_with:
                return f"endswith({operand}, {other})"
            return f"{operand} = {other}"
        return self._match(cond.field, predicate, lowered=True)

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        return f"{self.escape_and_quote_field(cond.field)} IS NULL"

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression,
                                       state: ConversionState) -> str:
        return f"{self.escape_and_quote_field(cond.field)} IS NOT NULL"

    def convert_condition_field_not_exists(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return f"{self.escape_and_quote_field(cond.field)} IS NULL"

    # --- boolean structure --------------------------------------------------------------------------

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Any:
        """NOT of a condition on a missing field is true: fold SQL's NULL to false before negating."""
        arg = cond.args[0]
        if arg is None:
            return None
        expr = self.convert_condition(arg, state)
        if isinstance(expr, DeferredQueryExpression):
            return expr.negate()
        if expr is None:
            return None
        return f"NOT coalesce(({expr}), false)"
