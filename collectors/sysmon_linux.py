"""Sysmon for Linux events -> ECS, mapped as Elastic's `sysmon_linux` integration (dataset `sysmon_linux.log`).

Sysmon for Linux writes each event as one line of Windows-event XML to syslog under the program name
`sysmon`: `<Event><System>...<EventID>1</EventID>...</System><EventData><Data Name="Image">/usr/bin/id</Data>
...</EventData></Event>`. The syslog parser hands such messages here (`is_sysmon`).

Mapping (Elastic's ingest pipeline, limited to our schema): `event.code` and `winlog.event_id` = EventID,
`event.provider`/`winlog.provider_name` = the provider (Linux-Sysmon), `winlog.record_id`, `winlog.channel`,
`winlog.computer_name` (also `host.name`), `event.created` = TimeCreated, `@timestamp` = UtcTime (the
moment Sysmon saw the activity; TimeCreated when absent); `event.category`/`event.type` per event id;
ProcessGuid/ProcessId/Image/CommandLine/CurrentDirectory -> `process.entity_id/pid/executable/
command_line/working_directory`, `process.name` = the last part of Image (Elastic splits on `\\` only,
which leaves Linux events with the syslog program name; we take the basename), Parent* ->
`process.parent.*`, User -> `user.name`, Hashes -> `process.hash.*`, TargetFilename -> `file.path`
(+ `file.name`, `file.directory`, `file.extension`), Source*/Destination* -> `source.*`/`destination.*`
(`*Hostname` -> `*.domain`), Protocol -> `network.transport`, Initiated -> `network.direction`
(egress/ingress), DestinationPortName -> `network.protocol`, SourceIsIpv6 -> `network.type`.

Every EventData value is also kept, under its original name and unchanged (`-` and empty values
dropped, as Elastic does), in the JSON field `winlog.event_data`, so a Sigma field with no ECS
equivalent (`LogonId`, `Initiated`, `ParentUser`, ...) can still be matched.

Safety: the message is untrusted text. It is parsed with the standard library only after checking that
it holds no markup declaration (`<!DOCTYPE`, `<!ENTITY`, comments): Sysmon never writes one, and an
entity-expansion bomb needs one. Messages over `MAX_EVENT_BYTES` are refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import posixpath
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from typing import Any

import orjson

from collectors.columns import in_time_range, int64_or_none
from collectors.errors import UnparsableRecordError

DATASET = "sysmon_linux.log"
MODULE = "sysmon_linux"
PROGRAM = "sysmon"
MAX_EVENT_BYTES = 256 * 1024
_EMPTY_VALUES = frozenset({"", "-", "{00000000-0000-0000-0000-000000000000}"})

# Sysmon event id -> (event.category, event.type), from Elastic's sysmon_linux pipeline.
CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "1": (["process"], ["start"]),
    "2": (["file"], ["change"]),
    "3": (["network"], ["start", "connection", "protocol"]),
    "4": (["process"], ["change"]),
    "5": (["process"], ["end"]),
    "9": (["file"], ["access"]),
    "11": (["file"], ["creation"]),
    "16": (["configuration"], ["change"]),
    "23": (["file"], ["deletion"]),
    "26": (["file"], ["deletion"]),
}

# EventData names copied to ECS fields as they are (strings).
_STRING_FIELDS: dict[str, str] = {
    "ProcessGuid": "process.entity_id",
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "CurrentDirectory": "process.working_directory",
    "ParentProcessGuid": "process.parent.entity_id",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "User": "user.name",
    "TargetFilename": "file.path",
    "SourceHostname": "source.domain",
    "DestinationHostname": "destination.domain",
    "Protocol": "network.transport",
    "DestinationPortName": "network.protocol",
}
_LONG_FIELDS: dict[str, str] = {
    "ProcessId": "process.pid",
    "ParentProcessId": "process.parent.pid",
    "SourcePort": "source.port",
    "DestinationPort": "destination.port",
}


def is_sysmon(program: str | None, message: str) -> bool:
    """True for a syslog message written by Sysmon for Linux (program `sysmon`, an `<Event>` document)."""
    return (program or "").lower() == PROGRAM and message.lstrip().startswith(("<Event", "<?xml"))


def sysmon_fields(message: str) -> dict[str, Any]:
    """Flat ECS fields of one Sysmon XML event; raises `UnparsableRecordError` when it is not one."""
    system, data = _parse_event(message)
    event_id = system.get("EventID")
    if not event_id:
        raise UnparsableRecordError("Sysmon event without an EventID")
    fields: dict[str, Any] = {
        "event.code": event_id,
        "event.kind": "event",
        "event.module": MODULE,
        "event.provider": system.get("Provider"),
        "winlog.event_id": event_id,
        "winlog.provider_name": system.get("Provider"),
        "winlog.record_id": system.get("EventRecordID"),
        "winlog.channel": system.get("Channel"),
        "winlog.computer_name": system.get("Computer"),
        "winlog.event_data": orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode() if data else None,
    }
    if system.get("Computer"):
        fields["host.name"] = system["Computer"]
    if event_id in CATEGORIES:
        fields["event.category"], fields["event.type"] = CATEGORIES[event_id]
    created = _time(system.get("TimeCreated"))
    if created is not None:
        fields["event.created"] = created
    moment = _time(data.get("UtcTime")) or created
    if moment is not None:
        fields["@timestamp"] = moment
    fields.update(_ecs_from_event_data(data))
    return {name: value for name, value in fields.items() if value is not None}


def _parse_event(message: str) -> tuple[dict[str, str], dict[str, str]]:
    text = message.strip()
    if len(text.encode("utf-8", errors="replace")) > MAX_EVENT_BYTES:
        raise UnparsableRecordError(f"Sysmon event larger than {MAX_EVENT_BYTES} bytes")
    if "<!" in text:
        raise UnparsableRecordError("Sysmon event with a markup declaration (DTD, entity or comment): refused")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise UnparsableRecordError(f"Sysmon event is not well-formed XML ({exc})") from None
    if _local(root.tag) != "Event":
        raise UnparsableRecordError(f"Sysmon message root is <{_local(root.tag)}>, not <Event>")
    system: dict[str, str] = {}
    data: dict[str, str] = {}
    for section in root:
        if _local(section.tag) == "System":
            for item in section:
                name = _local(item.tag)
                if name == "Provider":
                    system["Provider"] = item.get("Name", "")
                elif name == "TimeCreated":
                    system["TimeCreated"] = item.get("SystemTime", "")
                else:
                    system[name] = (item.text or "").strip()
        elif _local(section.tag) == "EventData":
            for item in section:
                key = item.get("Name")
                value = item.text or ""
                if key and value not in _EMPTY_VALUES:
                    data[key] = value
    return system, data


def _ecs_from_event_data(data: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {target: data[name] for name, target in _STRING_FIELDS.items() if name in data}
    for name, target in _LONG_FIELDS.items():
        number = int64_or_none(data.get(name))  # ASCII digits within int64 only (`²` is a digit to str.isdigit)
        if number is not None:
            fields[target] = number
    for side in ("Source", "Destination"):
        address = data.get(f"{side}Ip")
        if address:
            prefix = side.lower()
            fields[f"{prefix}.address"] = address
            with contextlib.suppress(ValueError):  # not an IP: kept in *.address only
                fields[f"{prefix}.ip"] = str(ipaddress.ip_address(address))
    if "Initiated" in data:
        fields["network.direction"] = "egress" if data["Initiated"].lower() == "true" else "ingress"
    if "SourceIsIpv6" in data:
        fields["network.type"] = "ipv6" if data["SourceIsIpv6"].lower() == "true" else "ipv4"
    if "network.transport" in fields:
        fields["network.transport"] = fields["network.transport"].lower()
    for name, parent in (("Image", "process"), ("ParentImage", "process.parent")):
        basename = posixpath.basename(data.get(name, ""))
        if basename and data[name] != "(null)":
            fields[f"{parent}.name"] = basename
    path = data.get("TargetFilename")
    if path:
        fields["file.name"] = posixpath.basename(path)
        fields["file.directory"] = posixpath.dirname(path)
        extension = posixpath.splitext(fields["file.name"])[1]
        if extension:
            fields["file.extension"] = extension[1:]
    fields.update(_hashes(data.get("Hashes", "")))
    addresses = [fields[key] for key in ("source.ip", "destination.ip") if key in fields]
    if addresses:
        fields["related.ip"] = list(dict.fromkeys(addresses))
    if "user.name" in fields:
        fields["related.user"] = [fields["user.name"]]
    return fields


def _hashes(text: str) -> dict[str, Any]:
    """`SHA256=AB..,MD5=CD..` -> process.hash.* (lower-case; all-zero hashes dropped, as Elastic does)."""
    fields: dict[str, Any] = {}
    for part in text.split(","):
        algorithm, _, value = part.partition("=")
        algorithm, value = algorithm.strip().lower(), value.strip().lower()
        if algorithm in ("md5", "sha1", "sha256") and value.strip("0"):
            fields[f"process.hash.{algorithm}"] = value
    return fields


def _time(value: str | None) -> datetime | None:
    """Sysmon's times: `2023-02-01T10:00:00.123456789Z` (TimeCreated) or `2023-02-01 10:00:00.123` (UtcTime)."""
    if not value:
        return None
    text = value.strip().replace(" ", "T").removesuffix("Z")
    head, _, fraction = text.partition(".")
    try:
        moment = datetime.fromisoformat(head)
    except ValueError:
        return None
    micros = int((fraction[:6] or "0").ljust(6, "0")) if fraction.isascii() and fraction.isdigit() else 0
    moment = moment.replace(microsecond=micros, tzinfo=UTC)
    return moment if in_time_range(moment) else None


def _local(tag: str) -> str:
    """An element's name without its namespace (`{http://...event}System` -> `System`)."""
    return tag.rsplit("}", 1)[-1]
