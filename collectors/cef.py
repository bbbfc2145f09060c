"""CEF and LEEF payloads (in a syslog message, or bare) -> ECS, one record at a time.

CEF (`CEF:0|Vendor|Product|Version|Class ID|Name|Severity|k=v k=v ...`) is mapped as Elastic's cef
integration maps it (its `decode_cef` processor): `observer.vendor/product/version` from the header,
`event.code` = Device Event Class ID, `message` = Name (the `msg` extension wins), `event.severity` from the
severity (Low 0, Medium 4, High 7, Very-High 9, or the number), the header in `cef.*` and every extension,
unchanged, in the JSON field `cef.extensions`; extensions with an ECS meaning fill it (src/dst -> source/
destination.ip, spt/dpt -> ports, shost/dhost -> domains, suser/duser -> source/destination.user.name,
act -> event.action, outcome -> event.outcome, proto -> network.transport, request -> url.original,
requestClientApplication -> user_agent.original, dvchost -> host.hostname, dvcpid/dproc -> process.pid/name,
fname/filePath -> file.name/path, rt -> @timestamp). Added by CitySOC so authentication rules see every
source alike: `user.name` = destination user, else source user; `event.category`=[authentication] when the
event's category or name speaks of authentication, logon or login.

LEEF (`LEEF:1.0|Vendor|Product|Version|EventID|k=v<TAB>k=v`, and 2.0 with its own delimiter after the
EventID) has no Elastic decoder; its predefined attributes are mapped to the same ECS fields by meaning
(src, dst, srcPort, dstPort, usrName -> user.name, proto, sev -> event.severity, devTime -> @timestamp, cat,
url, identHostName), the header to `observer.*` and `event.code`, every attribute to `leef.extensions`.

Parsing is linear: header fields are split at unescaped `|`, CEF extension keys are found at `key=` after
a space (an escaped `\\=` is part of a value), LEEF attributes at their delimiter.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import orjson

from collectors.columns import in_time_range, int64_or_none
from collectors.errors import UnparsableRecordError

CEF_DATASET = "cef.log"
LEEF_DATASET = "leef.log"
_HEADER_FIELD = re.compile(r"((?:[^|\\]|\\.)*)\|", re.DOTALL)
_HEADER_UNESCAPE = re.compile(r"\\([|\\])")
_EXTENSION_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\[\]-]+)=")
_VALUE_UNESCAPE = re.compile(r"\\([\\=nr])")
_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
SEVERITY = {"unknown": None, "low": 0, "medium": 4, "high": 7, "very-high": 9}
_AUTH_WORDS = re.compile(r"auth|log[io]n|logon|sign[- ]?in", re.IGNORECASE)
_TRANSPORTS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}

# extension key (short and full CEF names) -> ECS field
_CEF_STRINGS = {
    "shost": "source.domain", "sourceHostName": "source.domain",
    "dhost": "destination.domain", "destinationHostName": "destination.domain",
    "suser": "source.user.name", "sourceUserName": "source.user.name",
    "duser": "destination.user.name", "destinationUserName": "destination.user.name",
    "act": "event.action", "deviceAction": "event.action",
    "request": "url.original", "requestUrl": "url.original",
    "requestClientApplication": "user_agent.original",
    "dvchost": "host.hostname", "deviceHostName": "host.hostname",
    "dproc": "process.name", "deviceProcessName": "process.name",
    "fname": "file.name", "fileName": "file.name", "filePath": "file.path",
    "msg": "message", "message": "message",
}
_CEF_ADDRESSES = {"src": "source", "sourceAddress": "source", "dst": "destination", "destinationAddress": "destination"}
_CEF_NUMBERS = {"spt": "source.port", "sourcePort": "source.port", "dpt": "destination.port",
                "destinationPort": "destination.port", "dvcpid": "process.pid", "deviceProcessId": "process.pid"}
_LEEF_STRINGS = {"usrName": "user.name", "url": "url.original", "identHostName": "source.domain",
                 "srcHostName": "source.domain", "dstHostName": "destination.domain"}
_LEEF_ADDRESSES = {"src": "source", "dst": "destination"}
_LEEF_NUMBERS = {"srcPort": "source.port", "dstPort": "destination.port"}
_TIME_LAYOUTS = ("%b %d %Y %H:%M:%S.%f", "%b %d %Y %H:%M:%S", "%b %d %H:%M:%S.%f", "%b %d %H:%M:%S")


def is_cef_or_leef(text: str) -> bool:
    return text.startswith(("CEF:", "LEEF:"))


def _header(text: str, count: int, kind: str) -> tuple[list[str], str]:
    """The first `count` `|`-terminated header fields (unescaped) and what follows them."""
    fields: list[str] = []
    position = 0
    for _ in range(count):
        found = _HEADER_FIELD.match(text, position)
        if found is None:
            raise UnparsableRecordError(f"{kind} header with fewer than {count} '|'-separated fields")
        fields.append(_HEADER_UNESCAPE.sub(r"\1", found.group(1)))
        position = found.end()
    return fields, text[position:]


def cef_extensions(text: str) -> dict[str, str]:
    """`k=v k2=v with spaces` -> {k: v, k2: 'v with spaces'} (escapes \\= \\\\ \\n \\r undone)."""
    keys = list(_EXTENSION_KEY.finditer(text))
    values: dict[str, str] = {}
    for index, found in enumerate(keys):
        end = keys[index + 1].start() if index + 1 < len(keys) else len(text)
        raw = text[found.end():end].rstrip()
        values[found.group(1)] = _VALUE_UNESCAPE.sub(lambda m: _ESCAPES[m.group(1)], raw)
    return values


def _address(fields: dict[str, Any], side: str, value: str) -> None:
    try:
        fields[f"{side}.ip"] = str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return


def _common(fields: dict[str, Any], values: dict[str, str], strings: dict[str, str], addresses: dict[str, str],
            numbers: dict[str, str]) -> None:
    for key, target in strings.items():
        if values.get(key):
            fields[target] = values[key]
    for key, side in addresses.items():
        if values.get(key):
            _address(fields, side, values[key])
    for key, target in numbers.items():
        number = int64_or_none(values.get(key, "").strip())
        if number is not None:
            fields[target] = number
    ips = [fields[name] for name in ("source.ip", "destination.ip") if name in fields]
    if ips:
        fields["related.ip"] = list(dict.fromkeys(ips))


def _users(fields: dict[str, Any]) -> None:
    user = fields.get("user.name") or fields.get("destination.user.name") or fields.get("source.user.name")
    if user:
        fields["user.name"] = user
        fields["related.user"] = list(dict.fromkeys(
            name for name in (user, fields.get("source.user.name"), fields.get("destination.user.name")) if name))


def _outcome(fields: dict[str, Any], value: str | None) -> None:
    word = (value or "").strip().strip("/").lower()
    if word in ("success", "failure", "unknown"):
        fields["event.outcome"] = word
    elif word in ("failed", "fail", "denied"):
        fields["event.outcome"] = "failure"


def _transport(value: str | None) -> str | None:
    word = (value or "").strip().lower()
    return _TRANSPORTS.get(word, word) or None


def parse_device_time(value: str | None, *, reference: datetime, tz: tzinfo) -> datetime | None:
    """CEF/LEEF device times: milliseconds since the epoch, ISO-8601, or `MMM dd [yyyy] HH:mm:ss[.SSS]
    [zone]` (the layouts Elastic's decoder reads); None when it is none of those or cannot be stored."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if text.isascii() and text.isdigit() and len(text) <= 16:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(text))
        elif text[:4].isdigit():
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
        else:
            moment = _layout_time(text, reference=reference, tz=tz)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if in_time_range(moment) else None


def _layout_time(text: str, *, reference: datetime, tz: tzinfo) -> datetime:
    words = text.split()
    zone: tzinfo = tz
    if words and words[-1].upper() in ("UTC", "GMT", "Z"):
        zone, text = UTC, " ".join(words[:-1])
    for layout in _TIME_LAYOUTS:
        try:
            parsed = datetime.strptime(text, layout)
        except ValueError:
            continue
        if "%Y" not in layout:  # no year: the one that does not put it more than a day after the reference
            parsed = parsed.replace(year=reference.year)
            if parsed.replace(tzinfo=zone) > reference + timedelta(days=1):
                parsed = parsed.replace(year=reference.year - 1)
        return parsed.replace(tzinfo=zone)
    raise ValueError(text)


def cef_fields(text: str, *, reference: datetime, tz: tzinfo) -> dict[str, Any]:
    """Flat ECS fields of one CEF payload (starting `CEF:`); raises `UnparsableRecordError` when it is not CEF."""
    header, rest = _header(text.removeprefix("CEF:"), 7, "CEF")
    version, vendor, product, product_version, class_id, name, severity = header
    if not version.strip().isdigit():
        raise UnparsableRecordError(f"CEF version {version[:20]!r} is not a number")
    values = cef_extensions(rest)
    level = severity.strip().lower()
    fields: dict[str, Any] = {
        "event.module": "cef", "event.dataset": CEF_DATASET, "event.kind": "event",
        "observer.vendor": vendor or None, "observer.product": product or None,
        "observer.version": product_version or None, "event.code": class_id or None, "message": name,
        "event.severity": SEVERITY[level] if level in SEVERITY else int64_or_none(level),
        "cef.version": version, "cef.name": name or None, "cef.severity": severity or None,
        "cef.device.vendor": vendor or None, "cef.device.product": product or None,
        "cef.device.version": product_version or None, "cef.device.event_class_id": class_id or None,
        "cef.extensions": orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode() if values else None,
    }
    _common(fields, values, _CEF_STRINGS, _CEF_ADDRESSES, _CEF_NUMBERS)
    _outcome(fields, values.get("outcome") or values.get("eventOutcome"))
    transport = _transport(values.get("proto") or values.get("transportProtocol"))
    if transport:
        fields["network.transport"] = transport
    moment = parse_device_time(values.get("rt") or values.get("deviceReceiptTime"), reference=reference, tz=tz)
    if moment is not None:
        fields["@timestamp"] = moment
    category = values.get("cat") or values.get("deviceEventCategory") or ""
    if _AUTH_WORDS.search(category) or _AUTH_WORDS.search(name):
        fields["event.category"] = ["authentication"]
    _users(fields)
    return {key: value for key, value in fields.items() if value is not None}


def leef_fields(text: str, *, reference: datetime, tz: tzinfo) -> dict[str, Any]:
    """Flat ECS fields of one LEEF payload (starting `LEEF:`); raises `UnparsableRecordError` when it is not
    LEEF."""
    body = text.removeprefix("LEEF:")
    version = body.split("|", 1)[0].strip()
    if not re.fullmatch(r"[12](?:\.0)?", version):
        raise UnparsableRecordError(f"LEEF version {version[:20]!r} is neither 1.0 nor 2.0")
    two = version.startswith("2")
    header, rest = _header(body, 6 if two else 5, "LEEF")
    _, vendor, product, product_version, event_id = header[:5]
    delimiter = _delimiter(header[5]) if two else "\t"
    values = _leef_attributes(rest, delimiter)
    fields: dict[str, Any] = {
        "event.module": "leef", "event.dataset": LEEF_DATASET, "event.kind": "event",
        "observer.vendor": vendor or None, "observer.product": product or None,
        "observer.version": product_version or None, "event.code": event_id or None,
        "event.severity": int64_or_none(values.get("sev", "").strip()),
        "leef.version": version, "leef.device.vendor": vendor or None, "leef.device.product": product or None,
        "leef.device.version": product_version or None, "leef.device.event_id": event_id or None,
        "leef.extensions": orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode() if values else None,
    }
    _common(fields, values, _LEEF_STRINGS, _LEEF_ADDRESSES, _LEEF_NUMBERS)
    _outcome(fields, values.get("outcome") or values.get("result"))
    transport = _transport(values.get("proto"))
    if transport:
        fields["network.transport"] = transport
    moment = parse_device_time(values.get("devTime"), reference=reference, tz=tz)
    if moment is not None:
        fields["@timestamp"] = moment
    if _AUTH_WORDS.search(values.get("cat", "")) or _AUTH_WORDS.search(event_id):
        fields["event.category"] = ["authentication"]
    _users(fields)
    return {key: value for key, value in fields.items() if value is not None}


def _delimiter(spec: str) -> str:
    """LEEF 2.0's delimiter: one character, or its code as `x5E` / `0x5E`; tab when empty."""
    spec = spec.strip()
    if not spec:
        return "\t"
    if len(spec) > 1 and spec.lower().lstrip("0").startswith("x"):
        try:
            return chr(int(spec.lower().lstrip("0").removeprefix("x"), 16))
        except (ValueError, OverflowError):
            raise UnparsableRecordError(f"LEEF delimiter {spec[:10]!r} is not a character code") from None
    return spec[0]


def _leef_attributes(text: str, delimiter: str) -> dict[str, str]:
    if delimiter == "\t" and "\t" not in text and "=" in text:
        return cef_extensions(text)  # senders that use spaces where LEEF 1.0 wants tabs
    values: dict[str, str] = {}
    for part in text.split(delimiter):
        key, sign, value = part.partition("=")
        if sign and key.strip():
            values[key.strip()] = value
    return values
