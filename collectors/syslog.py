"""Syslog text files -> ECS, mapped as Elastic's `system` integration (syslog and auth datasets).

Line forms accepted (one event per line; gzip files are read transparently):
- RFC 5424: `<165>1 2003-10-11T22:14:15.003Z host app procid msgid [sd-id k="v"] message`
- RFC 3164: `<34>Oct 11 22:14:15 mymachine su[123]: message` (the tag may be missing after a PRI)
- the file form syslog daemons write, without PRI or year: `Dec 10 06:55:46 LabSZ sshd[24200]: message`,
  and its high-precision variant `2024-12-10T06:55:46.123456+00:00 host prog[pid]: message`.

Missing year rule: a timestamp without a year (`Dec 10 06:55:46`) takes the year given as `year`, else
the year of the reference time (`reference`, by default the file's modification time). When that puts
the event more than one day after the reference, the previous year is used instead: a December line
read from a file written in January belongs to the December before. Timestamps without a zone are in
`tz` (UTC unless told otherwise).

Dataset rule: `system.auth` when the program is an authentication program (`auth.AUTH_PROGRAMS`:
sshd, sudo, su, login, passwd, user/group tools, systemd-logind, polkit, ...), when the facility is
auth or authpriv, or when the message is a PAM message (`pam_...`, e.g. CRON's pam_unix session
lines); `system.syslog` otherwise.

Event ids: `stable_id("syslog", tenant, source, line, n)` where `line` is the stored (redacted) line and
`n` counts the occurrences of that identical line in the file, so a re-ingested file yields the same ids
while two genuinely repeated lines are both kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from citysoc.deadletter import DeadLetter
from citysoc.ids import stable_id
from citysoc.schema import nest
from collectors.auditd import DATASET as AUDITD_DATASET
from collectors.auditd import audit_fields, is_audit_record
from collectors.auth import auth_fields, is_auth
from collectors.base import LogParser, ParsedEvent, register_parser
from collectors.errors import UnparsableRecordError
from collectors.files import LineReader
from collectors.sysmon_linux import DATASET as SYSMON_DATASET
from collectors.sysmon_linux import is_sysmon, sysmon_fields

AUTH_DATASET = "system.auth"
SYSLOG_DATASET = "system.syslog"
NOT_SYSLOG = "not a syslog line (RFC 5424, RFC 3164 or 'Mmm dd hh:mm:ss host prog: msg')"

FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
)
SEVERITY_NAMES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

_RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+)"
    r" (?P<msgid>\S+) (?P<rest>.*)$"
)
_TIMESTAMP = (
    r"(?:(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2})"
    r" (?P<clock>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d{1,6})?"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?))"
)
_BSD = re.compile(
    rf"^(?:<(?P<pri>\d{{1,3}})>)?{_TIMESTAMP} +(?P<host>\S+) +(?P<tag>[^\s\[:]+)(?:\[(?P<pid>[^\]]*)\])?:"
    r"(?: ?(?P<msg>.*))?$"
)
# After a PRI, RFC 3164 allows a message without a tag.
_BSD_UNTAGGED = re.compile(rf"^<(?P<pri>\d{{1,3}})>{_TIMESTAMP} +(?P<host>\S+) +(?P<msg>.*)$")
_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]=]+)(?P<params>(?: [^\s=\]]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


@register_parser
class SyslogParser(LogParser):
    """Syslog files (RFC 5424, RFC 3164 and the daemons' file form) into system.auth / system.syslog."""

    name = "syslog"
    datasets = (AUTH_DATASET, SYSLOG_DATASET, SYSMON_DATASET, AUDITD_DATASET)

    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        reference = self.options.reference or datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        reader = LineReader()
        for item in reader.lines(path):
            line, origin = item.text, item.origin
            try:
                fields = self.parse_line(line, reference=reference)
            except UnparsableRecordError as exc:
                yield DeadLetter(tenant=tenant, source=source, origin=origin, reason=exc.reason, raw=line)
                continue
            try:
                dataset = self._classify(fields)
            except UnparsableRecordError as exc:
                yield DeadLetter(tenant=tenant, source=source, origin=origin, reason=exc.reason, raw=line)
                continue
            fields.setdefault("event.module", "system")
            fields.setdefault("event.kind", "event")
            fields.update({
                "organization.id": tenant,
                "event.id": stable_id("syslog", tenant, source, line, str(item.occurrence)),
                "event.dataset": dataset,
                "event.ingested": self.options.ingested(),
                "event.original": line,
                "log.file.path": str(path),
            })
            yield ParsedEvent(fields["event.dataset"], nest(fields))
        self.skipped += reader.skipped

    @staticmethod
    def _classify(fields: dict[str, Any]) -> str:
        """The dataset rule; adds the fields of the message's own format (Sysmon XML, audit record, auth)."""
        program = fields.get("process.name")
        message = fields.get("message", "")
        if is_sysmon(program, message) or is_audit_record(message):
            # The syslog program (sysmon, audisp-syslog) is the shipper, not the process the event is about.
            fields.pop("process.name", None)
            fields.pop("process.pid", None)
            if is_sysmon(program, message):
                fields.update(sysmon_fields(message))
                return SYSMON_DATASET
            fields.update(audit_fields(message))
            return AUDITD_DATASET
        if is_auth(program, message, fields.get("log.syslog.facility.code")):
            fields.update(auth_fields(program, message))
            return AUTH_DATASET
        return SYSLOG_DATASET

    def parse_line(self, line: str, *, reference: datetime) -> dict[str, Any]:
        """Flat ECS fields of one (redacted) line; raises `UnparsableRecordError` when it is not syslog."""
        match = _RFC5424.match(line)
        if match:
            return self._rfc5424(match)
        match = _BSD.match(line) or _BSD_UNTAGGED.match(line)
        if not match:
            raise UnparsableRecordError(NOT_SYSLOG)
        groups = match.groupdict()
        host, program, pid = groups["host"], groups.get("tag"), groups.get("pid")
        fields: dict[str, Any] = {
            "@timestamp": self._bsd_time(groups, reference),
            "message": groups.get("msg") or "",
            "host.hostname": host,
            "host.name": host,
            "log.syslog.hostname": host,
            "process.name": program,
            "log.syslog.appname": program,
            "log.syslog.procid": pid or None,
            "process.pid": int(pid) if pid and pid.isdigit() else None,
            **_priority(groups["pri"]),
        }
        return {name: value for name, value in fields.items() if value is not None}

    def _rfc5424(self, match: re.Match[str]) -> dict[str, Any]:
        groups = {key: (None if value == "-" else value) for key, value in match.groupdict().items()}
        if groups["ts"] is None:
            raise UnparsableRecordError("RFC 5424 line without a timestamp (NILVALUE)")
        structured, message = _structured_data(match.group("rest"))
        host, app, procid = groups["host"], groups["app"], groups["procid"]
        fields: dict[str, Any] = {
            "@timestamp": self._iso_time(groups["ts"]),
            "message": message.removeprefix("\ufeff"),
            "host.hostname": host,
            "host.name": host,
            "log.syslog.hostname": host,
            "log.syslog.version": int(match.group("version")),
            "log.syslog.appname": app,
            "log.syslog.procid": procid,
            "log.syslog.msgid": groups["msgid"],
            "log.syslog.structured_data": orjson.dumps(structured, option=orjson.OPT_SORT_KEYS).decode()
            if structured else None,
            "process.name": app,
            "process.pid": int(procid) if procid and procid.isdigit() else None,
            **_priority(match.group("pri")),
        }
        return {name: value for name, value in fields.items() if value is not None}

    def _iso_time(self, value: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise UnparsableRecordError(f"timestamp {value!r} is not ISO-8601") from None
        return (parsed.replace(tzinfo=self.options.tz) if parsed.tzinfo is None else parsed).astimezone(UTC)

    def _bsd_time(self, groups: dict[str, Any], reference: datetime) -> datetime:
        if groups.get("iso"):
            return self._iso_time(groups["iso"])
        hour, minute, second = (int(part) for part in groups["clock"].split(":"))
        micro = int((groups.get("fraction") or ".0")[1:].ljust(6, "0"))
        return year_for(
            month=_MONTHS[groups["month"]], day=int(groups["day"]), time=(hour, minute, second, micro),
            year=self.options.year, reference=reference, tz=self.options.tz,
        )


def year_for(*, month: int, day: int, time: tuple[int, int, int, int], year: int | None, reference: datetime,
             tz: Any) -> datetime:
    """Place a year-less timestamp in time: the missing year rule (see the module docstring)."""
    reference = reference if reference.tzinfo else reference.replace(tzinfo=tz)
    candidates = [year] if year is not None else [reference.year, reference.year - 1]
    for candidate in candidates:
        try:
            moment = datetime(candidate, month, day, *time, tzinfo=tz)
        except ValueError:  # 29 Feb outside a leap year, 31 Apr, ...
            continue
        if year is not None or moment <= reference + timedelta(days=1):
            return moment.astimezone(UTC)
    where = f"in {year}" if year is not None else f"within a year before {reference:%Y-%m-%d}"
    raise UnparsableRecordError(f"no valid date for month {month} day {day} {where}")


def _priority(pri: str | None) -> dict[str, Any]:
    if pri is None:
        return {}
    value = int(pri)
    if value > 191:
        raise UnparsableRecordError(f"syslog priority {value} is out of range (0-191)")
    facility, severity = divmod(value, 8)
    return {
        "log.syslog.priority": value,
        "log.syslog.facility.code": facility,
        "log.syslog.facility.name": FACILITY_NAMES[facility],
        "log.syslog.severity.code": severity,
        "log.syslog.severity.name": SEVERITY_NAMES[severity],
    }


def _structured_data(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    """Split RFC 5424 `STRUCTURED-DATA MSG` into {sd-id: {param: value}} and the message."""
    if rest == "-" or rest.startswith("- "):
        return {}, rest[2:]
    elements: dict[str, dict[str, str]] = {}
    position = 0
    while True:
        match = _SD_ELEMENT.match(rest, position)
        if not match:
            break
        elements[match.group("id")] = {
            name: _SD_UNESCAPE.sub(r"\1", value) for name, value in _SD_PARAM.findall(match.group("params"))
        }
        position = match.end()
    if not elements:
        raise UnparsableRecordError("RFC 5424 line whose structured data is neither '-' nor [id param=\"value\"]")
    return elements, rest[position:].removeprefix(" ")
