"""What a rule's Sigma detection tree guarantees about the events it can match.

Both analyses read the tree after the rule's processing pipeline (field names are ECS names) and are
sound by construction: they may find nothing, never something false.

- `route_key`: a field and a finite set of lower-cased literals such that the rule can only match an
  event whose lower-cased field value is one of them (`eventName: StopLogging` gives
  `RouteKey("event.action", {"stoplogging"})`). The engine evaluates a routed rule only for those events.
- `required_literals`: (field, literal) pairs such that the rule can only match an event in which one
  of the literals occurs in its field's lower-cased value. The engine evaluates such a rule only for the
  events the literal index finds one of them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaString, SpecialChars

from citysoc.schema import FIELDS
from correlator.compiler.backend import string_match
from correlator.model import RouteKey
from correlator.sql import STRING_KINDS, field_kind

# Routing fields in order of preference (the most selective first); any other scalar string field
# that every branch of a rule constrains to a finite set of literals can route as well.
PREFERRED_ROUTE_FIELDS: tuple[str, ...] = ("event.action", "event.provider", "process.name")

Node = object  # a node of a parsed Sigma condition (ConditionItem or a field/value leaf)
Requirements = dict[str, frozenset[str]]
LiteralRequirement = frozenset[tuple[str, str]]


def _plain_literal(value: object) -> str | None:
    """The lower-cased literal of a plain string value (no wildcard, placeholder, regex, ...)."""
    if not isinstance(value, SigmaString) or not all(isinstance(part, str) for part in value.s):
        return None
    text = "".join(str(part) for part in value.s)
    # Non-ASCII literals could lower-case differently in Python and on the JVM: never route on them.
    return text.lower() if text.isascii() else None


def required_values(node: Node) -> Requirements:
    """Fields the condition `node` constrains: node true => lower(field) in requirements[field].

    AND needs every child's requirements (intersected per field), OR only those shared by all children
    (united), NOT and anything that is not a plain string equality require nothing.
    """
    if isinstance(node, ConditionFieldEqualsValueExpression):
        literal = _plain_literal(node.value)
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


def _single_condition(rule: SigmaRule) -> Node | None:
    conditions = rule.detection.parsed_condition
    return conditions[0].parsed if len(conditions) == 1 else None


def route_key(rule: SigmaRule) -> RouteKey | None:
    """The route of a processed detection rule (call after the backend converted it)."""
    node = _single_condition(rule)
    return None if node is None else choose_route(required_values(node))


def literals_required(node: Node, *, raw_field: str,
                      recorded: AbstractSet[tuple[str, str]]) -> LiteralRequirement | None:
    """(field, literal) pairs such that the condition `node` is true only if one of the literals occurs in
    its field's lower-cased value; None when there is no such set.

    A leaf requires the literal the backend tests it with (`string_match`: a `contains`, or the guard of a
    `LIKE`), only if that test is one of the rule's substring terms (`recorded`: the condition's
    `literals`). AND requires what one child requires (the child whose shortest literal is longest: the
    rarest, usually), OR what all children require together, NOT nothing.
    """
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
        options = [r for r in (literals_required(child, raw_field=raw_field, recorded=recorded)
                               for child in node.args) if r]
        return max(options, key=lambda r: (min(len(lit) for _, lit in r), -len(r)), default=None)
    if isinstance(node, ConditionOR):
        united: set[tuple[str, str]] = set()
        for child in node.args:
            required = literals_required(child, raw_field=raw_field, recorded=recorded)
            if not required:
                return None
            united |= required
        return frozenset(united) or None
    return None  # NOT, null, ...


def required_literals(rule: SigmaRule, *, raw_field: str,
                      recorded: AbstractSet[tuple[str, str]]) -> LiteralRequirement | None:
    """`literals_required` of a processed detection rule's condition."""
    node = _single_condition(rule)
    return None if node is None else literals_required(node, raw_field=raw_field, recorded=recorded)
