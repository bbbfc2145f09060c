"""Syslog headers of a batch of lines, cut with Arrow compute functions (RE2: linear time, no backtracking).

Forms (one message per record):
- RFC 5424: `<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`;
- RFC 3164 and the file form syslog daemons write: `[<PRI>] TIMESTAMP HOSTNAME [facility.level] TAG[PID]: MSG`,
  the timestamp either `Mmm dd hh:mm:ss[.frac]` (no year) or ISO-8601; `facility.level` is what busybox's
  syslogd writes after the host name. The TAG ends at the first space, `[` or `:` (RFC 3164 4.1.3), so
  `syslogd 1.4.1: restart.` is tag `syslogd` with content `1.4.1: restart.`, and a message with no tag
  (`<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!`) takes its first word as the tag, as rsyslog does.

Two passes give the same fields: the common shape (`... host tag[pid]: msg`) is split at the first `": "`
and only its short head goes through a regular expression (`BSD_HEAD`); the other lines go through one
general expression that also captures the message (`BSD_LINE`). When `collectors._syslog_header` is built
(`collectors/native/syslog_header.c`), the RFC 5424 shape test and the first pass are one C pass a line,
matching byte for byte what the expressions match (`tests/collectors/test_native.py` compares both on the
same input); the expressions stay the definition, the pure path (`SOC_NATIVE=0`) and the second pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from collectors import native

MONTH = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
)
SEVERITY_NAMES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
# busybox's level words -> severity code
LEVEL_CODES = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4,
               "notice": 5, "info": 6, "debug": 7}
_FACILITY = "kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|ntp|security|console|local[0-7]"
_LEVEL = "|".join(LEVEL_CODES)
_PRI = r"(?:<(?P<pri>[0-9]{1,3})> ?)?"
_TIME = (rf"(?:(?P<month>{MONTH}) +(?P<day>[0-9]{{1,2}}) (?P<clock>[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}})"
         r"(?P<fraction>\.[0-9]{1,9})?"
         r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?))")
_FACILITY_LEVEL = rf"(?:(?P<facility>{_FACILITY})\.(?P<level>{_LEVEL}) +)?"
_TAG = r"(?P<tag>[^ \[\]:]+)"
_PID = r"(?:\[(?P<pid>[^\]]*)\])?"
BSD_HEAD = rf"^{_PRI}{_TIME} +(?P<host>[^ ]+) +{_FACILITY_LEVEL}{_TAG}{_PID}$"
BSD_LINE = rf"(?s)^{_PRI}{_TIME} +(?P<host>[^ ]+)(?: +{_FACILITY_LEVEL}{_TAG}?{_PID}:?)? ?(?P<msg>.*)$"
RFC5424_SHAPE = r"^<[0-9]{1,3}>[0-9]{1,2} [^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]"
_RFC5424_START = r"^<(?P<pri>[0-9]{1,3})>(?P<version>[0-9]{1,2})$"
BSD_FIELDS = ("pri", "month", "day", "clock", "fraction", "iso", "host", "facility", "level", "tag", "pid")
RFC5424_FIELDS = ("pri", "version", "iso", "host", "tag", "pid", "msgid", "rest")


def spread(mask: pa.Array, values: pa.Array) -> pa.Array:
    """A full-length array: `values` in order at the true positions of `mask`, null elsewhere."""
    if len(values) == len(mask):  # every row chosen
        return values
    return pc.replace_with_mask(pa.nulls(len(mask), values.type), mask, values)


def overlay(base: pa.Array, mask: pa.Array, values: pa.Array) -> pa.Array:
    """`base` with the true positions of `mask` replaced by `values` in order."""
    if len(values) == len(mask):
        return values
    return pc.replace_with_mask(base, mask, values)


def within(outer: pa.Array, inner: pa.Array) -> pa.Array:
    """The full-length mask of rows chosen by `inner` among the rows chosen by `outer`."""
    return pc.fill_null(spread(outer, inner), False)


@dataclass
class Headers:
    """Header parts of every line as strings (null where a form has no such part), and which form matched.

    `rfc5424` / `bsd` are the rows of each form; a row in neither is not syslog. `message` is set for BSD
    rows; RFC 5424 rows keep `rest` (structured data and message), which the caller splits.
    """

    parts: dict[str, pa.Array]
    rfc5424: pa.Array
    bsd: pa.Array

    def __getitem__(self, name: str) -> pa.Array:
        return self.parts[name]


def _fields(struct: pa.StructArray, names: tuple[str, ...]) -> dict[str, pa.Array]:
    """Named groups of an extract_regex result, empty groups as null (RE2 gives "" for a group that did not
    take part)."""
    empty = pa.scalar(None, pa.string())
    return {name: pc.if_else(pc.equal(struct.field(name), ""), empty, struct.field(name)) for name in names}


def split_headers(lines: pa.Array) -> Headers:
    """The header parts of every line: by the compiled `collectors._syslog_header` when it is built (one pass
    a line for the RFC 5424 shape test and the common BSD shape), else by Arrow's regular expressions; the
    lines of neither shape go through `BSD_LINE` either way, and both ways give the same `Headers`."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    compiled = native.load("syslog_header")
    if compiled is None or lines.type != pa.string() or lines.null_count or not len(lines):
        return split_headers_with_regexes(lines)
    _, offsets, data = lines.buffers()
    status, fields = compiled.split_bsd(offsets, data or b"", lines.offset, len(lines))
    length = len(lines)
    kinds = pa.Array.from_buffers(pa.uint8(), length, [None, pa.py_buffer(status)])
    parts: dict[str, Any] = {
        name: pa.Array.from_buffers(pa.string(), length, [
            pa.py_buffer(validity) if nulls else None, pa.py_buffer(positions), pa.py_buffer(text)], null_count=nulls)
        for name, (validity, positions, text, nulls) in zip((*BSD_FIELDS, "message"), fields, strict=True)}
    for name in ("version", "msgid", "rest"):
        parts[name] = pa.nulls(length, pa.string())
    rfc5424 = pc.equal(kinds, 2)
    if pc.any(rfc5424).as_py():
        _rfc5424_parts(lines, rfc5424, parts)
    matched_rows = pc.equal(kinds, 1)
    slow_rows = pc.equal(kinds, 0)
    if pc.any(slow_rows).as_py():
        matched_rows = pc.or_(matched_rows, _general_parts(lines, slow_rows, parts))
    return Headers(parts, rfc5424, matched_rows)


def _rfc5424_parts(lines: pa.Array, rfc5424: pa.Array, parts: dict[str, Any]) -> None:
    tokens = pc.split_pattern(lines.filter(rfc5424), " ", max_splits=6)
    start = _fields(pc.extract_regex(pc.list_element(tokens, 0), _RFC5424_START), ("pri", "version"))
    found = {**start, "iso": pc.list_element(tokens, 1), "host": pc.list_element(tokens, 2),
             "tag": pc.list_element(tokens, 3), "pid": pc.list_element(tokens, 4),
             "msgid": pc.list_element(tokens, 5), "rest": pc.list_element(tokens, 6)}
    for name in ("host", "tag", "pid", "msgid"):  # "-" is RFC 5424's NILVALUE
        found[name] = pc.if_else(pc.equal(found[name], "-"), pa.scalar(None, pa.string()), found[name])
    for name, values in found.items():
        parts[name] = overlay(parts[name], rfc5424, values)


def _general_parts(lines: pa.Array, slow_rows: pa.Array, parts: dict[str, Any]) -> pa.Array:
    """`BSD_LINE` on the rows of `slow_rows`; returns the full-length mask of those it matched."""
    general = pc.extract_regex(lines.filter(slow_rows), BSD_LINE)
    matched = general.is_valid()
    if not pc.any(matched).as_py():
        return pc.fill_null(pa.nulls(len(lines), pa.bool_()), False)
    found = _fields(general.filter(matched), BSD_FIELDS)
    found["message"] = general.filter(matched).field("msg")
    general_rows = within(slow_rows, matched)
    for name, values in found.items():
        parts[name] = overlay(parts[name], general_rows, values)
    return general_rows


def split_headers_with_regexes(lines: pa.Array) -> Headers:
    """`split_headers` with Arrow compute functions only (the pure path)."""
    length = len(lines)
    names = (*BSD_FIELDS, "version", "msgid", "rest", "message")
    parts: dict[str, Any] = {name: pa.nulls(length, pa.string()) for name in names}

    rfc5424 = pc.fill_null(pc.match_substring_regex(lines, RFC5424_SHAPE), False)
    any_rfc5424 = pc.any(rfc5424).as_py()
    if any_rfc5424:
        _rfc5424_parts(lines, rfc5424, parts)

    others = pc.invert(rfc5424)
    rest = lines.filter(others) if any_rfc5424 else lines  # the usual batch holds no RFC 5424 line
    halves = pc.split_pattern(rest, ": ", max_splits=1)
    heads = pc.extract_regex(pc.list_element(halves, 0), BSD_HEAD)
    quick = heads.is_valid()
    quick_rows = within(others, quick)
    if pc.any(quick).as_py():
        every = heads.null_count == 0  # the usual batch: every line has the common shape, no copy of the rows
        quick_halves = halves if every else halves.filter(quick)
        found = _fields(heads if every else heads.filter(quick), BSD_FIELDS)
        has_message = pc.equal(pc.list_value_length(quick_halves), 2)
        messages = pc.list_flatten(pc.list_slice(quick_halves, 1, 2))
        found["message"] = pc.fill_null(spread(has_message, messages), "")
        for name, values in found.items():
            parts[name] = overlay(parts[name], quick_rows, values)

    slow = pc.invert(quick)
    slow_rows = within(others, slow)
    matched_rows = quick_rows
    if pc.any(slow).as_py():
        matched_rows = pc.or_(matched_rows, _general_parts(lines, slow_rows, parts))
    return Headers(parts, rfc5424, matched_rows)
