"""A literal that every match of a regular expression contains, to test cheaply before the regex.

`required_literal('.+:assumed-role/aws:.+')` is `':assumed-role/aws:'`: a value without that substring
cannot match, so `contains(f, ':assumed-role/aws:') AND f rlike '...'` means the same as the `rlike`
alone and runs the regex only on the rows that have the literal (rsigma's prefilter idea).

The analysis is deliberately small and gives up (None) on anything it does not fully understand:
it reads the top-level sequence of a case-sensitive Java regex, keeps runs of plain ASCII characters
that no quantifier makes optional, and treats groups, classes, `.`, anchors and escape classes as
gaps. A top-level `|`, inline flags, `\\Q...\\E`, numeric or named escapes, nested classes and
non-ASCII text make it return None. Callers must not use it for case-insensitive regexes.
"""

from __future__ import annotations

# Escapes of one letter that stand for a class, an anchor or a control character: a gap, two chars long.
_SINGLE_ESCAPES = frozenset("dDwWsSbBAzZGhHvVRXntrfae")
_QUANTIFIERS = frozenset("*?+{")


class _GiveUp(Exception):
    """The regex uses something the analysis does not model."""


def _skip_class(regex: str, at: int) -> int:
    """Index just after the character class starting at `regex[at] == '['`."""
    i = at + 1
    if i < len(regex) and regex[i] == "^":
        i += 1
    if i < len(regex) and regex[i] == "]":
        raise _GiveUp  # a leading `]` means different things in different dialects
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            raise _GiveUp  # nested classes / intersections
        if char == "]":
            return i + 1
        i += 1
    raise _GiveUp


def _skip_group(regex: str, at: int) -> int:
    """Index just after the group starting at `regex[at] == '('` (its contents are a gap)."""
    depth, i = 0, at
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _skip_class(regex, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _GiveUp


def _skip_quantifier(regex: str, at: int) -> int:
    """Index after the quantifier at `at` (`*`, `+`, `?`, `{n,m}`) and its lazy/possessive suffix."""
    i = at
    if regex[i] == "{":
        close = regex.find("}", i)
        if close < 0:
            raise _GiveUp
        i = close + 1
    else:
        i += 1
    if i < len(regex) and regex[i] in "?+":
        i += 1
    return i


def literal_runs(regex: str) -> list[str]:
    """Every run of characters that each match of the case-sensitive `regex` contains (may be empty)."""
    if "\\Q" in regex or "(?" in regex.replace("(?:", "").replace("(?=", "").replace("(?!", ""):
        # \Q quotes; `(?i)`, `(?x)`, `(?<=`, `(?<name>` ... change meaning or are not modelled
        raise _GiveUp
    runs: list[str] = []
    current: list[str] = []

    def gap() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    i = 0
    while i < len(regex):
        char = regex[i]
        if char == "|" or char == ")":
            raise _GiveUp  # alternatives at the top level: no single requirement
        if char == "(":
            gap()
            i = _skip_group(regex, i)
            if i < len(regex) and regex[i] in _QUANTIFIERS:
                i = _skip_quantifier(regex, i)
            continue
        if char == "[":
            gap()
            i = _skip_class(regex, i)
            if i < len(regex) and regex[i] in _QUANTIFIERS:
                i = _skip_quantifier(regex, i)
            continue
        if char in ".^$":
            gap()
            i += 1
            if char == "." and i < len(regex) and regex[i] in _QUANTIFIERS:
                i = _skip_quantifier(regex, i)
            continue
        if char in _QUANTIFIERS or char in "]}":
            raise _GiveUp  # a quantifier with nothing before it, or a stray bracket
        if char == "\\":
            if i + 1 >= len(regex):
                raise _GiveUp
            escaped = regex[i + 1]
            if escaped.isalnum():
                if escaped not in _SINGLE_ESCAPES:
                    raise _GiveUp  # \x41, \u0041, \p{L}, \1, \k<n>, \c...: not modelled
                gap()
                i += 2
                if i < len(regex) and regex[i] in _QUANTIFIERS:
                    i = _skip_quantifier(regex, i)
                continue
            literal, width = escaped, 2
        else:
            literal, width = char, 1
        if not literal.isascii():
            raise _GiveUp
        i += width
        if i < len(regex) and regex[i] in _QUANTIFIERS:
            required = regex[i] == "+"  # `a+` needs one `a`; `a*`, `a?`, `a{0,n}` may have none
            if required:
                current.append(literal)
            gap()
            i = _skip_quantifier(regex, i)
            continue
        current.append(literal)
    gap()
    return runs


def required_literal(regex: str, *, min_length: int = 3) -> str | None:
    """The longest literal every match of the case-sensitive Java `regex` contains, if one of at least
    `min_length` characters can be derived safely; else None."""
    try:
        runs = literal_runs(regex)
    except (_GiveUp, IndexError):
        return None
    best = max(runs, key=len, default="")
    return best if len(best) >= min_length else None
