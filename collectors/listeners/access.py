"""How registered sources are recognised on the wire, from a JSON file beside the case API's sources.

The case API keeps a tenant's sources (tenant, kind, name); until it also keeps their networks,
token digests, certificate fingerprints and cloud accounts, the intake reads those from
`$SOC_HOME/intake/access.json`, a list of entries naming a registered source:

    [{"tenant": "riverside-council", "source": "dmz syslog", "transports": ["udp", "tcp"],
      "networks": ["192.0.2.0/24"]},
     {"tenant": "northgate-hospital", "source": "cloudtrail push", "transports": ["http"],
      "token_sha256": "<hex sha256 of the token>", "parser": "aws.cloudtrail", "cloud_accounts": ["111122223333"]}]

An entry whose tenant and source the case API does not know is left out (and said so): nothing is
filed under a tenant that is not registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast, get_args

import orjson
import structlog

from collectors.attribution import SourceAccess, SourceRef, Transport, networks
from collectors.base import get_parser
from collectors.errors import CollectorError, UnknownParserError

log = structlog.get_logger("collectors.listeners")
_TRANSPORTS = frozenset(get_args(Transport))


class AccessFileError(CollectorError):
    """The access file cannot be read as a list of entries."""


def read_access_file(path: Path) -> list[dict[str, Any]]:
    """The entries of the file; none when it does not exist."""
    if not path.exists():
        return []
    try:
        entries = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise AccessFileError(f"not JSON: {error}", where=str(path)) from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise AccessFileError("expected a JSON list of objects (see collectors/INTAKE.md)", where=str(path))
    return entries


def access_from(entries: Sequence[Mapping[str, Any]], sources: Sequence[Mapping[str, Any]], *,
                where: str = "access.json") -> list[SourceAccess]:
    """`SourceAccess` for each entry naming a source the case API lists (`id`, `tenant_id`, `kind`, `name`)."""
    registered = {(str(source["tenant_id"]), str(source["name"])): source for source in sources}
    access = []
    for number, entry in enumerate(entries, start=1):
        place = f"{where} entry {number}"
        tenant, name = str(entry.get("tenant", "")), str(entry.get("source", ""))
        source = registered.get((tenant, name))
        if source is None:
            log.warning("access entry names no registered source; left out", entry=place, tenant=tenant, source=name)
            continue
        transports = set(entry.get("transports") or [])
        if not transports or not transports <= _TRANSPORTS:
            raise AccessFileError(f"transports must be some of {sorted(_TRANSPORTS)}, got {sorted(transports)}",
                                  where=place)
        try:
            nets = networks(entry.get("networks") or [])
        except ValueError as error:
            raise AccessFileError(str(error), where=place) from None
        kind = str(source["kind"])
        ref = SourceRef(int(source["id"]), tenant, name, kind, _parser(entry.get("parser"), kind, place),
                        tuple(str(account) for account in entry.get("cloud_accounts") or ()))
        access.append(SourceAccess(ref, cast(frozenset[Transport], frozenset(transports)), nets,
                                   _hex(entry.get("token_sha256")), _hex(entry.get("certificate_sha256"))))
    return access


def _parser(given: object, kind: str, place: str) -> str:
    """The entry's parser, else the source kind when it names one, else none (HTTP: `?source=` decides)."""
    try:
        return get_parser(str(given)).name if given else get_parser(kind).name
    except UnknownParserError as error:
        if given:
            raise AccessFileError(str(error), where=place) from None
        return ""


def _hex(value: object) -> str | None:
    return str(value).lower().replace(":", "") if value else None
