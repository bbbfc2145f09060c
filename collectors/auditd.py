"""Linux audit records -> ECS, mapped as Elastic's auditd integration (dataset `auditd.log`).

Record forms accepted (one record per line):
- `/var/log/audit/audit.log`: `type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 ...`,
  optionally `node=host ` first and, in auditd's ENRICHED format, `\\x1dARCH=x86_64 SYSCALL=execve AUID="alice"
  ...` after a group separator (rsyslog writes it as `#035`);
- the same record in a syslog message (audisp's syslog plugin), routed here by the syslog parser;
- the kernel's own form when no auditd runs: `audit: type=1300 audit(1700000000.123:456): ...`.

Mapping: `auditd.log.record_type` = type, `auditd.log.sequence` = the serial number, and every key=value
pair in the JSON field `auditd.log.fields` under its own name (Elastic keeps them as `auditd.log.<key>`;
our schema is fixed, hence one JSON document). Values are decoded as auparse does: quotes removed,
hex-encoded untrusted strings (unquoted hex in `proctitle`, EXECVE `a0..aN`, `name`, `exe`, `comm`,
`cwd`, `key`, ...) decoded, `proctitle`'s NUL separators turned into spaces; a `msg='k=v ...'` payload
(USER_* and SERVICE_* records) is split into its pairs too. RAW-format logs carry only the syscall
number: `SYSCALL` (the name auditd's ENRICHED format adds) is filled in from `SYSCALL_NAMES` for x86_64
and aarch64, so rules that match `SYSCALL: execve` work on either format.

ECS: `@timestamp` = the record's own time, `event.action` = the record type in lower case,
`event.outcome` from `success=` or `res=`, `host.name` = node, `process.pid/parent.pid/executable/name`
from pid/ppid/exe/comm, `process.working_directory` (CWD), `process.title` (PROCTITLE),
`process.args` and `process.command_line` (EXECVE), `file.path` (PATH `name`), `user.id` = uid,
`user.name` = acct, `source.address`/`source.ip` = addr.

Events: one event per record. A kernel event spans several records sharing one sequence number
(SYSCALL, EXECVE, CWD, PATH..., PROCTITLE, EOE); they are stored as separate events, as Elastic's
auditd integration does and as SigmaHQ's auditd rules expect (each rule matches fields of one record
type: `type: EXECVE` with `a0..`, `type: SYSCALL` with `exe`/`comm`/`SYSCALL`, `type: PATH` with `name`).
`auditd.log.sequence` (with `host.name` and the time) joins the records of one event.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from citysoc.deadletter import DeadLetter
from collectors.base import LogParser, Normalised, register_parser
from collectors.columns import columns_from_rows, in_time_range, int64_or_none
from collectors.errors import UnparsableRecordError
from collectors.records import RawRecord
from collectors.redact import redact_text

DATASET = "auditd.log"
MODULE = "auditd"
NOT_AUDIT = "not an audit record ('type=T msg=audit(EPOCH:SERIAL): key=value ...')"

# ASCII only: `\d` would also take other scripts' digits, which int() then refuses.
_RECORD = re.compile(
    r"^(?:node=(?P<node>\S+) )?type=(?P<type>[A-Z0-9_]+) msg=audit\((?P<epoch>[0-9]+(?:\.[0-9]+)?):"
    r"(?P<sequence>[0-9]+)\): ?(?P<body>.*)$", re.DOTALL | re.ASCII,
)
_KERNEL_RECORD = re.compile(
    r"^(?:\[\s*[0-9]+\.[0-9]+\] )?audit: type=(?P<number>[0-9]+) audit\((?P<epoch>[0-9]+(?:\.[0-9]+)?):"
    r"(?P<sequence>[0-9]+)\): ?(?P<body>.*)$", re.DOTALL | re.ASCII,
)
# The same record shapes in RE2 syntax, for routing syslog messages a batch at a time.
RECORD_SHAPE = (r"^(?:node=[^ ]+ )?type=[A-Z0-9_]+ msg=audit\([0-9]+(?:\.[0-9]+)?:[0-9]+\):"
                r"|^(?:\[\s*[0-9]+\.[0-9]+\] )?audit: type=[0-9]+ audit\([0-9]+(?:\.[0-9]+)?:[0-9]+\):")
_KEY = re.compile(r"[^\s=]*")
_SPACE = re.compile(r"\s*")
_HEX = re.compile(r"^(?:[0-9A-F]{2})+$")
_SPACE_OR_END = re.compile(r"\s")
_ENRICHED_SEPARATORS = ("\x1d", "#035")

# Kernel record type numbers (linux/audit.h) for the kernel's own form.
RECORD_TYPES: dict[str, str] = {
    "1100": "USER_AUTH", "1101": "USER_ACCT", "1103": "CRED_ACQ", "1104": "CRED_DISP", "1105": "USER_START",
    "1106": "USER_END", "1112": "USER_LOGIN", "1123": "USER_CMD", "1130": "SERVICE_START",
    "1131": "SERVICE_STOP", "1300": "SYSCALL", "1302": "PATH", "1305": "CONFIG_CHANGE", "1307": "CWD",
    "1309": "EXECVE", "1320": "EOE", "1325": "NETFILTER_CFG", "1326": "SECCOMP", "1327": "PROCTITLE",
    "1400": "AVC", "1401": "SELINUX_ERR",
}
# Fields auditd writes hex-encoded when the value holds spaces, quotes or control characters.
ENCODED_FIELDS: frozenset[str] = frozenset({
    "proctitle", "name", "exe", "comm", "ocomm", "cwd", "path", "key", "data", "cmd", "acct", "dir", "file",
    "watch", "cgroup", "root_dir", "new", "old",
})
_EXECVE_ARG = re.compile(r"^a[0-9]+(?:\[[0-9]+\])?$")

X86_64 = "c000003e"
AARCH64 = "c00000b7"
# Syscall numbers -> names for RAW-format logs (no `SYSCALL=` field): the syscalls detection rules name.
SYSCALL_NAMES: dict[str, dict[int, str]] = {
    X86_64: {
        0: "read", 1: "write", 2: "open", 3: "close", 9: "mmap", 10: "mprotect", 41: "socket", 42: "connect",
        43: "accept", 44: "sendto", 45: "recvfrom", 49: "bind", 50: "listen", 56: "clone", 57: "fork",
        58: "vfork", 59: "execve", 62: "kill", 76: "truncate", 77: "ftruncate", 82: "rename", 83: "mkdir",
        84: "rmdir", 85: "creat", 86: "link", 87: "unlink", 88: "symlink", 89: "readlink", 90: "chmod",
        92: "chown", 99: "sysinfo", 101: "ptrace", 103: "syslog", 105: "setuid", 106: "setgid",
        113: "setreuid", 117: "setresuid", 126: "capset", 133: "mknod", 135: "personality", 155: "pivot_root",
        157: "prctl", 161: "chroot", 165: "mount", 166: "umount2", 169: "reboot", 170: "sethostname",
        175: "init_module", 176: "delete_module", 246: "kexec_load", 257: "openat", 259: "mknodat",
        260: "fchownat", 263: "unlinkat", 264: "renameat", 268: "fchmodat", 272: "unshare", 288: "accept4",
        308: "setns", 310: "process_vm_readv", 311: "process_vm_writev", 313: "finit_module",
        319: "memfd_create", 321: "bpf", 322: "execveat",
    },
    AARCH64: {
        33: "mknodat", 35: "unlinkat", 38: "renameat", 40: "mount", 56: "openat", 92: "personality",
        105: "init_module", 106: "delete_module", 116: "syslog", 117: "ptrace", 129: "kill", 144: "setgid",
        146: "setuid", 179: "sysinfo", 198: "socket", 203: "connect", 220: "clone", 221: "execve",
        273: "finit_module", 279: "memfd_create", 280: "bpf", 281: "execveat",
    },
}
_ARCH_NAMES = {X86_64: "x86_64", AARCH64: "aarch64"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_audit_record(message: str) -> bool:
    """True for a message that is one audit record (audisp's syslog plugin, or the kernel's own form)."""
    text = message.lstrip()
    return bool(_RECORD.match(text) or _KERNEL_RECORD.match(text))


def audit_fields(record: str) -> dict[str, Any]:
    """Flat ECS fields of one audit record; raises `UnparsableRecordError` when it is not one."""
    text = record.strip()
    match = _RECORD.match(text)
    if match:
        record_type, node = match.group("type"), match.group("node")
    else:
        match = _KERNEL_RECORD.match(text)
        if not match:
            raise UnparsableRecordError(NOT_AUDIT)
        number, node = match.group("number"), None
        record_type = RECORD_TYPES.get(number, f"UNKNOWN[{number}]")
    values = parse_pairs(match.group("body"), record_type=record_type)
    _add_syscall_name(values)
    fields: dict[str, Any] = {
        "@timestamp": _record_time(match.group("epoch")),
        "message": text,
        "event.kind": "event",
        "event.module": MODULE,
        "event.action": record_type.lower(),
        "auditd.log.record_type": record_type,
        "auditd.log.sequence": int64_or_none(match.group("sequence")),
        "auditd.log.fields": orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode() if values else None,
        "host.name": node,
    }
    fields.update(_ecs(record_type, values))
    return {name: value for name, value in fields.items() if value is not None}


def _record_time(epoch: str) -> datetime:
    """`1700000000.123` -> an aware UTC time; refused when it is past what can be stored (year 9999)."""
    seconds, _, fraction = epoch.partition(".")
    try:
        if len(seconds) > 12:
            raise OverflowError
        moment = _EPOCH + timedelta(seconds=int(seconds), microseconds=int(fraction[:6].ljust(6, "0") or 0))
    except OverflowError:
        raise UnparsableRecordError(f"audit time {epoch[:40]} is out of range (years 1 to 9999)") from None
    if not in_time_range(moment):
        raise UnparsableRecordError(f"audit time {epoch[:40]} is out of range (years 1 to 9999)")
    return moment


def parse_pairs(body: str, *, record_type: str) -> dict[str, str]:
    """The key=value pairs of a record body, decoded; a `msg='...'` payload contributes its own pairs.

    One left-to-right pass (linear in the body, whatever it holds): a key runs to `=` or a space, a value is
    quoted (to the matching quote, or to the next space when the quote never closes) or runs to a space.
    """
    for separator in _ENRICHED_SEPARATORS:
        body = body.replace(separator, " ")
    values: dict[str, str] = {}
    for key, raw in _pairs(body):
        if key == "msg" and raw.startswith("'") and raw.endswith("'") and len(raw) > 1:
            for inner_key, inner_raw in _pairs(raw[1:-1]):
                values.setdefault(inner_key, _decode(inner_key, inner_raw, record_type=record_type))
            continue
        values.setdefault(key, _decode(key, raw, record_type=record_type))
    return values


def _pairs(body: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    position, end = 0, len(body)
    while position < end:
        position = _SPACE.match(body, position).end()  # type: ignore[union-attr]
        key_end = _KEY.match(body, position).end()  # type: ignore[union-attr]
        if key_end >= end or body[key_end] != "=" or key_end == position:
            position = max(key_end, position + 1)  # a word without `=`: skipped
            continue
        start = key_end + 1
        quote = body[start] if start < end and body[start] in "\"'" else None
        stop = body.find(quote, start + 1) if quote else -1
        if stop >= 0:
            value_end = stop + 1
        else:
            space = _SPACE_OR_END.search(body, start)
            value_end = space.start() if space else end
        pairs.append((body[position:key_end], body[start:value_end]))
        position = value_end
    return pairs


def _decode(key: str, raw: str, *, record_type: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    encoded = key in ENCODED_FIELDS or (record_type == "EXECVE" and _EXECVE_ARG.match(key) is not None)
    if encoded and _HEX.match(raw):
        text = bytes.fromhex(raw).decode("utf-8", errors="replace")
        if key == "proctitle":
            text = text.replace("\x00", " ").strip()
        return redact_text(text)
    return raw


def _add_syscall_name(values: dict[str, str]) -> None:
    """Fill `SYSCALL`/`ARCH` as the ENRICHED format would, when the log is RAW and the number is known."""
    arch, number = values.get("arch", "").lower(), int64_or_none(values.get("syscall"))
    if "SYSCALL" in values or number is None:
        return
    name = SYSCALL_NAMES.get(arch, {}).get(number)
    if name:
        values["SYSCALL"] = name
        values.setdefault("ARCH", _ARCH_NAMES[arch])


def _ecs(record_type: str, values: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, target in (("pid", "process.pid"), ("ppid", "process.parent.pid")):
        number = int64_or_none(values.get(key))
        if number is not None:
            fields[target] = number
    for key, target in (("exe", "process.executable"), ("comm", "process.name"), ("uid", "user.id")):
        if values.get(key) not in (None, "", "?", "(null)"):
            fields[target] = values[key]
    if record_type == "CWD" and values.get("cwd"):
        fields["process.working_directory"] = values["cwd"]
    if record_type == "PROCTITLE" and values.get("proctitle"):
        fields["process.title"] = values["proctitle"]
    if record_type == "PATH" and values.get("name") not in (None, "", "(null)"):
        fields["file.path"] = values["name"]
    if record_type == "EXECVE":
        args = _execve_args(values)
        if args:
            fields["process.args"] = args
            fields["process.command_line"] = " ".join(args)
    outcome = values.get("success") or values.get("res")
    if outcome:
        fields["event.outcome"] = "success" if outcome.lower() in ("yes", "success", "1") else "failure"
    account = values.get("acct")
    if account and account != "?":
        fields["user.name"] = account
        fields["related.user"] = [account]
    address = values.get("addr")
    if address and address != "?":
        fields["source.address"] = address
        try:
            fields["source.ip"] = str(ipaddress.ip_address(address))
            fields["related.ip"] = [fields["source.ip"]]
        except ValueError:
            pass
    return fields


def _execve_args(values: dict[str, str]) -> list[str]:
    """EXECVE's arguments in order; a long one comes in chunks `aN[0]`, `aN[1]`, ... (after `aN_len`).

    `argc` is believed only as far as the record holds arguments: each takes at least one key."""
    count = min(int64_or_none(values.get("argc")) or len(values), len(values))
    args: list[str] = []
    for index in range(count):
        if f"a{index}" in values:
            args.append(values[f"a{index}"])
        elif f"a{index}[0]" in values:
            chunks: list[str] = []
            while f"a{index}[{len(chunks)}]" in values:
                chunks.append(values[f"a{index}[{len(chunks)}]"])
            args.append("".join(chunks))
    return args


@register_parser
class AuditdParser(LogParser):
    """`/var/log/audit/audit.log` files (RAW or ENRICHED format) into auditd.log, one event per record."""

    name = "auditd"
    aliases = ("auditd.log",)
    datasets = (DATASET,)

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        rows: list[dict[str, Any]] = []
        accepted: list[int] = []
        dead: list[tuple[int, DeadLetter]] = []
        for index, record in enumerate(records):
            text = redact_text(record.payload.decode("utf-8", errors="replace").rstrip("\r\n"))
            try:
                fields = audit_fields(text)
            except UnparsableRecordError as exc:
                dead.append((index, self.refuse(record, exc.reason, tenant=tenant, source=source, raw=text)))
                continue
            fields.update({"event.dataset": DATASET, "event.original": text})
            rows.append(fields)
            accepted.append(index)
        columns, kept, refused = columns_from_rows(rows)
        for row, reason in refused:
            dead.append((accepted[row], self.refuse(records[accepted[row]], reason, tenant=tenant, source=source)))
        return Normalised(columns, [accepted[row] for row in kept], sorted(dead, key=lambda pair: pair[0]))
