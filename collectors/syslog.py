"""Syslog messages -> ECS, a batch at a time, mapped as Elastic's `system` integration (syslog and auth).

Forms: RFC 5424, RFC 3164 (with or without PRI, tag or pid) and the file form syslog daemons write
(`collectors.syslog_header`); timestamps and the missing-year rule: `collectors.syslog_time`. One message
per record; a file is read line by line (LF, CRLF or a lone CR), gzip transparently.

Every line is redacted (`password=...` and the like) before anything else, so no secret reaches an id, a
field or a dead letter. Then, for the whole batch at once with Arrow compute functions: the header, the
timestamp, the priority, the dataset rule and the auth fields (`collectors.auth`). Messages in a format of
their own are mapped record by record: Sysmon for Linux XML (`sysmon_linux.log`), audit records
(`auditd.log`), CEF (`cef.log`) and LEEF (`leef.log`) payloads, whether inside a syslog header or bare
(a bare one needs its own device time), and RFC 5424 structured data.

Dataset rule: `system.auth` when the program is an authentication program (`auth.AUTH_PROGRAMS`), the
facility is auth or authpriv, or the message is a PAM message (`pam_...`); `system.syslog` otherwise.
`process.name` is the tag without a `(module)` suffix: RHEL's old `sshd(pam_unix)[pid]:` lines are sshd's.

Event ids: `citysoc.ids.event_ids` over the tenant, the source, the resolved `@timestamp` and the stored
(redacted) line, with the occurrence number of identical lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from collectors.auditd import DATASET as AUDITD_DATASET
from collectors.auditd import RECORD_SHAPE, audit_fields
from collectors.auth import auth_fields, is_auth, spread_fields
from collectors.base import LogParser, Normalised, register_parser
from collectors.cef import CEF_DATASET, LEEF_DATASET, cef_fields, leef_fields
from collectors.columns import TIMESTAMP, EventColumns, columns_from_rows, int64_from_text
from collectors.errors import UnparsableRecordError
from collectors.records import RawRecord, payload_column, received_column, single_received
from collectors.redact import redact_text_column
from collectors.syslog_header import FACILITY_NAMES, LEVEL_CODES, SEVERITY_NAMES, split_headers, spread
from collectors.syslog_structured import structured_data
from collectors.syslog_time import parse_iso, resolve_yearless
from collectors.sysmon_linux import DATASET as SYSMON_DATASET
from collectors.sysmon_linux import sysmon_fields

AUTH_DATASET = "system.auth"
SYSLOG_DATASET = "system.syslog"
NOT_SYSLOG = "not a syslog line (RFC 5424, RFC 3164 or 'Mmm dd hh:mm:ss host prog: msg')"
_BARE_PAYLOAD = r"^(?:<[0-9]{1,3}> ?)?(?:CEF|LEEF):"
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BARE_PRI = re.compile(r"<([0-9]{1,3})>")
# Records of their own format inside a syslog message, mapped record by record.
_SYSMON, _AUDIT, _CEF, _BARE = "sysmon", "audit", "cef", "bare"


def decode(records: Sequence[RawRecord]) -> pa.Array:
    """The payloads as one string array: validated in Arrow (a record block's payloads are used as they are,
    others copied once); only a batch holding invalid UTF-8 is decoded record by record (invalid bytes
    become U+FFFD)."""
    binary = payload_column(records)
    try:
        texts = binary.cast(pa.string())
    except pa.ArrowInvalid:
        texts = pa.array([payload.decode("utf-8", errors="replace") for payload in binary.to_pylist()], pa.string())
    if not _may_need_trimming(texts):  # the usual batch: the two trims (0.07 µs a line) would copy it unchanged
        return texts
    return pc.utf8_ltrim(pc.utf8_rtrim(texts, characters="\r\n\x00"), characters="\ufeff")


_TRAILING = np.zeros(256, np.bool_)  # by byte value: CR, LF, NUL
_TRAILING[list(b"\r\n\x00")] = True
_BOM = np.frombuffer("\ufeff".encode(), np.uint8)


def _may_need_trimming(texts: pa.Array) -> bool:
    """False when no line ends with CR, LF or NUL and none starts with U+FEFF (read from the offsets and the
    bytes at each line's ends: no kernel over the text)."""
    _, offsets, data = texts.buffers()[:3]
    if offsets is None or data is None or not pa.types.is_string(texts.type):
        return True
    ends = np.frombuffer(offsets, np.int32, len(texts) + 1, texts.offset * 4)
    starts, stops = ends[:-1], ends[1:]
    text = np.frombuffer(data, np.uint8)
    lengths = stops - starts
    if _TRAILING[text[(stops if lengths.all() else stops[lengths > 0]) - 1]].any():
        return True
    heads = starts if (lengths >= len(_BOM)).all() else starts[lengths >= len(_BOM)]
    heads = heads[text[heads] == _BOM[0]]  # usually none: the other two bytes are read for these only
    return bool(((text[heads + 1] == _BOM[1]) & (text[heads + 2] == _BOM[2])).any())


@register_parser
class SyslogParser(LogParser):
    """Syslog (RFC 5424, RFC 3164, daemons' files) into system.auth / system.syslog and the sub-formats."""

    name = "syslog"
    datasets = (AUTH_DATASET, SYSLOG_DATASET, SYSMON_DATASET, AUDITD_DATASET, CEF_DATASET, LEEF_DATASET)

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        lines = redact_text_column(decode(records))
        headers = split_headers(lines)
        columns = EventColumns(len(lines))
        reasons: list[str | None] = [None] * len(lines)
        header_rows = pc.or_(headers.rfc5424, headers.bsd)
        bare = pc.invert(header_rows)  # only a line without a syslog header can be a bare CEF/LEEF payload
        if pc.any(bare).as_py():
            bare = pc.and_(bare, pc.fill_null(pc.match_substring_regex(lines, _BARE_PAYLOAD), False))
        for row in _positions(pc.invert(pc.or_(header_rows, bare))):
            reasons[row] = NOT_SYSLOG
        self._timestamps(columns, headers, records, reasons)
        _priority(columns, headers, reasons)
        messages = self._messages(columns, headers, reasons)
        _header_fields(columns, headers)
        slow = self._classify(columns, headers, messages, bare)
        columns["event.original"] = lines
        columns["event.kind"] = "event"
        slow_rows = {row: kind for row, kind in slow.items() if reasons[row] is None}
        self._slow_paths(columns, slow_rows, lines, records, reasons)
        if reasons.count(None) == len(reasons):  # the usual batch: every line became an event
            return Normalised(columns, list(range(len(reasons))), [])
        accepted = [row for row, reason in enumerate(reasons) if reason is None]
        refused = [row for row, reason in enumerate(reasons) if reason is not None]
        texts = lines.take(pa.array(refused, pa.int64())).to_pylist()
        dead = [(row, self.refuse(records[row], reasons[row] or "", tenant=tenant, source=source, raw=text))
                for row, text in zip(refused, texts, strict=True)]
        return Normalised(columns.take(pa.array(accepted, pa.int64())), accepted, dead)

    def _timestamps(self, columns: EventColumns, headers: Any, records: Sequence[RawRecord],
                    reasons: list[str | None]) -> None:
        iso = headers["iso"].is_valid()
        moments = pa.nulls(len(reasons), TIMESTAMP)
        if pc.any(iso).as_py():
            moments = spread(iso, parse_iso(headers["iso"].filter(iso), tz=self.options.tz))
        classic = headers["month"].is_valid()
        if pc.any(classic).as_py():
            reference: Any = self.options.reference
            if reference is None:  # a live record: its own arrival time decides the year
                shared = single_received(records)
                reference = shared if shared is not None else received_column(records).filter(classic)
            every = pc.all(classic).as_py()  # the usual batch of BSD lines: no filter copies the columns

            def chosen(values: pa.Array) -> pa.Array:
                return values if every else values.filter(classic)

            found = resolve_yearless(chosen(headers["month"]), chosen(headers["day"]), chosen(headers["clock"]),
                                     chosen(pc.fill_null(headers["fraction"], "")), year=self.options.year,
                                     reference=reference, tz=self.options.tz)
            moments = pc.coalesce(moments, spread(classic, found))
        columns["@timestamp"] = moments
        missing = pc.and_(pc.or_(headers.rfc5424, headers.bsd), moments.is_null())
        for row in _positions(missing):
            reasons[row] = reasons[row] or self._time_reason(headers, row)

    def _time_reason(self, headers: Any, row: int) -> str:
        text = headers["iso"][row].as_py()
        if headers.rfc5424[row].as_py() and text == "-":
            return "RFC 5424 line without a timestamp (NILVALUE)"
        if text is not None:
            return f"timestamp {text[:60]!r} is not ISO-8601, or not a time between the years 1 and 9999"
        month, day = headers["month"][row].as_py(), headers["day"][row].as_py()
        where = f"in {self.options.year}" if self.options.year is not None else (
            f"within a year before {self.options.reference:%Y-%m-%d}" if self.options.reference
            else "within a year before its arrival")
        number = _MONTH_NAMES.index(month) + 1
        return f"no valid date for month {number} day {int(day)} {where} (or a clock past 23:59:59)"

    def _messages(self, columns: EventColumns, headers: Any, reasons: list[str | None]) -> pa.Array:
        """`message`: the BSD message, or what follows RFC 5424's structured data (parsed record by record
        when there is some)."""
        rest = headers["rest"]
        if not pc.any(headers.rfc5424).as_py():  # BSD lines only: the header split gave the message
            columns["message"] = pc.fill_null(headers["message"], "")
            return columns["message"]
        nil = pc.fill_null(pc.or_(pc.equal(rest, "-"), pc.starts_with(rest, "- ")), False)
        messages = pc.if_else(nil, pc.utf8_slice_codeunits(rest, 2), headers["message"])
        messages = pc.if_else(pc.fill_null(pc.starts_with(messages, "\ufeff"), False),
                              pc.utf8_slice_codeunits(messages, 1), messages)
        with_data = pc.fill_null(pc.starts_with(rest, "["), False)
        odd = pc.and_(headers.rfc5424, pc.invert(pc.or_(nil, with_data)))
        for row in _positions(odd):
            reasons[row] = reasons[row] or "RFC 5424 line whose structured data is neither '-' nor [id param=\"value\"]"
        if pc.any(with_data).as_py():
            rows = _positions(with_data)
            found: list[str | None] = []
            texts: list[str | None] = []
            for row, text in zip(rows, rest.filter(with_data).to_pylist(), strict=True):
                try:
                    elements, message = structured_data(text)
                    found.append(orjson.dumps(elements, option=orjson.OPT_SORT_KEYS).decode())
                    texts.append(message.removeprefix("\ufeff"))
                except UnparsableRecordError as exc:
                    reasons[row] = reasons[row] or exc.reason
                    found.append(None)
                    texts.append(None)
            messages = pc.replace_with_mask(messages, with_data, pa.array(texts, pa.string()))
            columns["log.syslog.structured_data"] = spread(with_data, pa.array(found, pa.string()))
        columns["message"] = pc.fill_null(messages, "")
        return columns["message"]

    def _classify(self, columns: EventColumns, headers: Any, messages: pa.Array,
                  bare: pa.Array) -> dict[int, str]:
        """event.dataset and the auth fields for the batch; returns the rows mapped record by record."""
        program = pc.utf8_lower(columns["process.name"])
        tagged = pc.is_in(headers["tag"], pa.array(["CEF", "LEEF"]))
        if pc.any(tagged).as_py():
            tagged = pc.and_(tagged, pc.match_substring_regex(messages, r"^[0-9.]+\|"))
        if _may_open_own_format(messages):
            text = pc.utf8_ltrim_whitespace(messages)
            sysmon = pc.fill_null(pc.and_(pc.equal(program, "sysmon"), pc.or_(
                pc.starts_with(text, "<Event"), pc.starts_with(text, "<?xml"))), False)
            # the regular expressions run only where a cheap test leaves a chance (the usual batch: nowhere)
            audit = pc.fill_null(pc.or_(pc.starts_with(text, "type="), pc.starts_with(text, "node=")), False)
            if pc.any(audit).as_py():
                audit = pc.fill_null(pc.match_substring_regex(text, RECORD_SHAPE), False)
            payload = pc.or_(pc.starts_with(text, "CEF:"), pc.starts_with(text, "LEEF:"))
            payload = pc.fill_null(pc.or_kleene(payload, tagged), False)
        else:  # no message opens a record of its own format: the seven kernels above would all say False
            sysmon = audit = pa.array(np.zeros(len(messages), np.bool_))
            payload = pc.fill_null(tagged, False)
        own_format = pc.or_(pc.or_(sysmon, audit), payload)
        auth = pc.and_(is_auth(program, messages, columns["log.syslog.facility.code"]), pc.invert(own_format))
        columns["event.dataset"] = pc.if_else(auth, AUTH_DATASET, SYSLOG_DATASET)
        columns["event.module"] = "system"
        if pc.any(auth).as_py():
            every = pc.all(auth).as_py()  # a stream of auth lines: no filter copies the columns
            chosen = (program, messages) if every else (program.filter(auth), messages.filter(auth))
            for name, values in spread_fields(auth, auth_fields(*chosen)).items():
                columns[name] = values
        slow: dict[int, str] = {}
        for kind, mask in ((_BARE, bare), (_SYSMON, sysmon), (_AUDIT, audit), (_CEF, payload)):
            for row in _positions(mask):
                slow.setdefault(row, kind)
        return slow

    def _slow_paths(self, columns: EventColumns, slow: dict[int, str], lines: pa.Array,
                    records: Sequence[RawRecord], reasons: list[str | None]) -> None:
        """Sysmon, audit, CEF and LEEF records: their flat fields, built in Python, replace their rows."""
        rows = sorted(slow)
        if not rows:
            return
        base = columns.take(pa.array(rows, pa.int64())).rows()
        texts = lines.take(pa.array(rows, pa.int64())).to_pylist()
        built: list[dict[str, Any]] = []
        built_rows: list[int] = []
        for row, fields, line in zip(rows, base, texts, strict=True):
            try:
                built.append(self._own_format(slow[row], fields, line, records[row].received))
                built_rows.append(row)
            except UnparsableRecordError as exc:
                reasons[row] = exc.reason
        made, kept, refused = columns_from_rows(built)
        for index, reason in refused:
            reasons[built_rows[index]] = reason
        keep = [built_rows[index] for index in kept]
        columns.replace_rows(keep, made)

    def _own_format(self, kind: str, fields: dict[str, Any], line: str, received: datetime) -> dict[str, Any]:
        message = fields.get("message", "")
        if kind in (_SYSMON, _AUDIT):
            # the syslog program (sysmon, audisp-syslog) is the shipper, not the process the event is about
            fields.pop("process.name", None)
            fields.pop("process.pid", None)
            if kind == _SYSMON:
                fields.update(sysmon_fields(message))
                fields["event.dataset"] = SYSMON_DATASET
            else:
                fields.update(audit_fields(message))
                fields["event.dataset"] = AUDITD_DATASET
            return fields
        if kind == _BARE:
            fields = {"event.original": line, "event.kind": "event"}
            pri = _BARE_PRI.match(line)
            if pri:
                fields.update(priority_fields(int(pri.group(1))))
            payload = line[pri.end():].lstrip() if pri else line
            fields["message"] = payload
        elif message.lstrip().startswith(("CEF:", "LEEF:")):
            payload = message.lstrip()
        else:  # `host CEF:0|...`: the header's tag was the payload's own start
            payload = f"{fields.get('log.syslog.appname')}:{message}"
            fields.pop("process.name", None)
        reference = self.options.reference or received
        mapped = (cef_fields if payload.startswith("CEF:") else leef_fields)(payload, reference=reference,
                                                                            tz=self.options.tz)
        if "@timestamp" not in mapped and "@timestamp" not in fields:
            raise UnparsableRecordError("a bare CEF/LEEF payload needs a device time (rt, devTime) or a syslog header")
        fields.update(mapped)
        return fields


# The first four bytes of each start `_classify` tests for (`<Event`, `<?xml`, `type=`, `node=`, `CEF:`, `LEEF:`).
_OWN_FORMAT_HEADS = np.frombuffer(b"<Eve<?xmtypenodeCEF:LEEF", "<u4").astype(np.uint32)  # little-endian words
# A first byte utf8_ltrim_whitespace might cut, with room to spare: a control, space, DEL, or outside ASCII.
_MAYBE_SPACE = np.zeros(256, np.bool_)
_MAYBE_SPACE[[*range(0x21), *range(0x7F, 0x100)]] = True
_OPENS = np.zeros(256, np.bool_)  # the first bytes of those starts
_OPENS[list(b"<tnCL")] = True


def _may_open_own_format(messages: pa.Array) -> bool:
    """False when no message, as it stands, begins with one of the starts `_classify` tests for and none begins
    with a byte `utf8_ltrim_whitespace` might cut (`_MAYBE_SPACE`): read with numpy from the offsets and each
    message's first byte, and the first four of the few that begin like one of the starts (0.017 µs a line
    against 0.053 for the seven kernels)."""
    _, offsets, data = messages.buffers()[:3]
    if offsets is None or not pa.types.is_string(messages.type):
        return True
    ends = np.frombuffer(offsets, np.int32, len(messages) + 1, messages.offset * 4)
    starts, sizes = ends[:-1], np.diff(ends)
    if data is None or not (sizes > 0).any():
        return False  # every message empty: none starts with anything
    text = np.frombuffer(data, np.uint8)
    filled = sizes > 0
    heads, first = starts[filled], text[starts[filled]]
    if _MAYBE_SPACE[first].any():
        return True
    heads = heads[_OPENS[first] & (sizes[filled] >= 4)]  # the few that begin like one of the starts
    words = (text[heads].astype(np.uint32) | text[heads + 1].astype(np.uint32) << 8
             | text[heads + 2].astype(np.uint32) << 16 | text[heads + 3].astype(np.uint32) << 24)
    return bool(np.isin(words, _OWN_FORMAT_HEADS).any())


def _positions(mask: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()  # type: ignore[no-any-return]


def _priority(columns: EventColumns, headers: Any, reasons: list[str | None]) -> None:
    """PRI -> priority, facility and severity (codes and names); busybox's `facility.level` when no PRI."""
    priority = int64_from_text(headers["pri"])
    out_of_range = pc.greater(priority, 191)
    if pc.any(out_of_range).as_py():
        for row in _positions(out_of_range):
            reasons[row] = reasons[row] or f"syslog priority {priority[row].as_py()} is out of range (0-191)"
        priority = pc.if_else(pc.fill_null(out_of_range, False), pa.scalar(None, pa.int64()), priority)
    facility = pc.divide(priority, 8)
    severity = pc.subtract(priority, pc.multiply(facility, 8))
    length = len(reasons)
    if headers["facility"].null_count < length or headers["level"].null_count < length:  # busybox's names
        facility, severity, priority = _named_priority(headers, facility, severity, priority)
    columns["log.syslog.priority"] = priority
    columns["log.syslog.facility.code"] = facility
    columns["log.syslog.severity.code"] = severity
    columns["log.syslog.facility.name"] = pa.array(FACILITY_NAMES, pa.string()).take(facility)
    columns["log.syslog.severity.name"] = pa.array(SEVERITY_NAMES, pa.string()).take(severity)


def _named_priority(headers: Any, facility: pa.Array, severity: pa.Array,
                    priority: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Facility, severity and priority where the line names them (`facility.level`) instead of a PRI."""
    named_facility = pc.index_in(headers["facility"], value_set=pa.array(FACILITY_NAMES))
    named_level = pa.array(list(LEVEL_CODES.values()), pa.int64()).take(
        pc.index_in(headers["level"], value_set=pa.array(list(LEVEL_CODES))))
    facility = pc.coalesce(facility, pc.cast(named_facility, pa.int64()))
    severity = pc.coalesce(severity, named_level)
    both = pc.and_(facility.is_valid(), severity.is_valid())
    priority = pc.coalesce(priority, pc.if_else(both, pc.add(pc.multiply(facility, 8), severity),
                                                pa.scalar(None, pa.int64())))
    return facility, severity, priority


def priority_fields(value: int) -> dict[str, Any]:
    """The PRI fields of one record (refused past 191, as for the batch)."""
    if value > 191:
        raise UnparsableRecordError(f"syslog priority {value} is out of range (0-191)")
    facility, severity = divmod(value, 8)
    return {"log.syslog.priority": value, "log.syslog.facility.code": facility,
            "log.syslog.facility.name": FACILITY_NAMES[facility], "log.syslog.severity.code": severity,
            "log.syslog.severity.name": SEVERITY_NAMES[severity]}


def _header_fields(columns: EventColumns, headers: Any) -> None:
    host, tag, pid = headers["host"], headers["tag"], headers["pid"]
    for name in ("host.hostname", "host.name", "log.syslog.hostname"):
        columns[name] = host
    columns["log.syslog.appname"] = tag
    module = pc.fill_null(pc.ends_with(tag, ")"), False)  # sshd(pam_unix) -> sshd
    if pc.any(module).as_py():
        module = pc.fill_null(pc.match_substring_regex(tag, r".\(.*\)$"), False)
    if pc.any(module).as_py():
        tag = pc.replace_with_mask(tag, module, pc.replace_substring_regex(tag.filter(module), r"\(.*\)$", ""))
    columns["process.name"] = tag
    columns["log.syslog.procid"] = pid
    columns["process.pid"] = int64_from_text(pid)
    columns["log.syslog.version"] = int64_from_text(headers["version"])
    columns["log.syslog.msgid"] = headers["msgid"]
