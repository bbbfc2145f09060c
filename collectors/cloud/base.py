"""The shared machinery of the cloud and identity audit parsers: one native record (a decoded JSON object)
-> flat ECS fields, and files or pushed bodies -> records, envelopes unwrapped.

A dataset's parser says three things: how an envelope holds its records (`unwrap`: Event Hub
`{"records": [...]}`, an Okta event hook, a Pub/Sub push message), how one native record maps to ECS
(`fields`, raising `UnparsableRecordError` with the reason for anything it cannot take), and which
datasets it writes. Everything else holds for every cloud parser:

- records arrive as `RawRecord`s holding JSON (files are cut by `collectors.jsonfiles`: an array such as a
  Management Activity API content blob or an Okta System Log page, NDJSON such as a Cloud Logging export or
  GitHub's audit log, or one document such as an Event Hub message body);
- every record is redacted by key (`collectors.redact`) before it is mapped, and its redacted text is kept
  in `event.original`;
- an envelope counts as its records (`origin:record[i]` each); one that holds nothing usable is one dead
  letter with the reason, and so is every record a parser cannot take, never an exception;
- `event.id` is the provider's own record id where it has one; without one the shared rule of
  `collectors.base` gives one (tenant, source, time, content).

Pulls hand decoded records over without files: `native_event` maps one record (no envelope) to a nested
ECS document, and `RawRecord(orjson.dumps(record), ...)` batches go through `parse_records` like any other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import orjson

from citysoc.deadletter import DeadLetter
from citysoc.schema import nest, snake_case
from collectors.base import LogParser, Normalised, ParserOptions
from collectors.columns import columns_from_rows, in_time_range
from collectors.errors import UnparsableRecordError
from collectors.jsonfiles import read_json_records
from collectors.records import RawRecord
from collectors.redact import TOO_DEEP, may_hold_secrets, redact_json_text, redact_record

Flat = dict[str, Any]


class CloudAuditParser(LogParser):
    """A JSON audit-log parser: `unwrap` envelopes, `fields` per native record."""

    line_records = False
    #: What one native record of this parser looks like, for the dead letter of a record it cannot take.
    shape: ClassVar[str]

    def records(self, path: Path) -> Iterator[RawRecord]:
        return read_json_records(path, received=self.options.ingested(), limits=self.limits)

    def redact(self, text: str) -> str:
        return redact_json_text(text)

    # --- the two hooks of a dataset ---------------------------------------------------------------------

    def unwrap(self, document: Any) -> list[Any] | None:
        """The records an envelope holds, or None when `document` is itself one record. Raises
        `UnparsableRecordError` for an envelope it recognises but cannot open (bad base64, say)."""
        return None

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        """(dataset, flat ECS fields) of one redacted native record; raises `UnparsableRecordError`."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------------

    def native(self, record: Any, *, raw: bytes | None = None) -> tuple[str, Flat]:
        """One native record (decoded JSON) -> (dataset, flat ECS fields with `event.original`), redacted."""
        if not isinstance(record, dict):
            raise UnparsableRecordError(f"record is not a JSON object but {type(record).__name__}: "
                                        f"expected {self.shape}")
        if raw is None or may_hold_secrets(raw):
            record = redact_record(record)
        try:
            original = orjson.dumps(record).decode()
        except orjson.JSONEncodeError:
            raise UnparsableRecordError(TOO_DEEP) from None
        dataset, flat = self.fields(record)
        flat["event.original"] = original
        flat["event.dataset"] = dataset
        flat.setdefault("event.kind", "event")
        return dataset, {name: value for name, value in flat.items() if value is not None}

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        rows: list[Flat] = []
        owners: list[int] = []
        origins: list[tuple[int, str, Any]] = []
        dead: list[tuple[int, DeadLetter]] = []
        for index, record in enumerate(records):
            try:
                document = orjson.loads(record.payload)
            except orjson.JSONDecodeError as exc:
                dead.append((index, self.refuse(record, f"record is not JSON: {exc}", tenant=tenant, source=source)))
                continue
            try:
                items = self.unwrap(document)
            except UnparsableRecordError as exc:
                dead.append((index, self.refuse_item(record, record.origin, exc.reason, document, tenant=tenant,
                                                     source=source)))
                continue
            if items is not None and not items:
                dead.append((index, self.refuse(record, f"an envelope holding no records: expected {self.shape}",
                                                tenant=tenant, source=source)))
                continue
            parts = ([(f"{record.origin}:record[{i}]", item) for i, item in enumerate(items)]
                     if items is not None else [(record.origin, document)])
            for origin, item in parts:
                try:
                    _, flat = self.native(item, raw=record.payload if items is None else None)
                except UnparsableRecordError as exc:
                    letter = self.refuse_item(record, origin, exc.reason, item, tenant=tenant, source=source)
                    dead.append((index, letter))
                    continue
                rows.append(flat)
                owners.append(index)
                origins.append((index, origin, item))
        columns, kept, refused = columns_from_rows(rows)
        for row, reason in refused:
            index, origin, item = origins[row]
            letter = self.refuse_item(records[index], origin, reason, item, tenant=tenant, source=source)
            dead.append((index, letter))
        return Normalised(columns, [owners[row] for row in kept], sorted(dead, key=lambda pair: pair[0]))


def native_event(parser: CloudAuditParser, record: Mapping[str, Any], *, tenant: str,
                 options: ParserOptions | None = None) -> dict[str, Any]:
    """One decoded native record -> nested ECS document (`organization.id` the tenant, `event.ingested` now);
    raises `UnparsableRecordError` with the reason when the parser cannot take it. No envelope: unwrap first
    (`parser.unwrap`)."""
    _, flat = parser.native(dict(record))
    options = options or parser.options
    return nest({**flat, "organization.id": tenant, "event.ingested": options.ingested()})


# --- helpers for the dataset parsers ------------------------------------------------------------------


def parse_time(value: Any, name: str) -> datetime:
    """An ISO-8601 time (any number of fraction digits; no zone = UTC) or epoch milliseconds, as UTC."""
    if isinstance(value, bool) or value is None:
        raise UnparsableRecordError(f"{name} is missing or not a time: {value!r}")
    if isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise UnparsableRecordError(f"{name} {value!r} is out of range as epoch milliseconds") from None
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text), name)
        try:
            parsed = datetime.fromisoformat(_trim_fraction(text))
            moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except ValueError:
            raise UnparsableRecordError(f"{name} {text[:60]!r} is not an ISO-8601 time") from None
        except OverflowError:
            raise UnparsableRecordError(f"{name} {text[:60]!r} is out of range") from None
    else:
        raise UnparsableRecordError(f"{name} is not a time but {type(value).__name__}")
    if not in_time_range(moment):
        raise UnparsableRecordError(f"{name} {value!r} is out of range (years 1 to 9999 in UTC)")
    return moment


def _trim_fraction(text: str) -> str:
    """Nanosecond fractions (Cloud Logging) cut to microseconds; `fromisoformat` takes the rest."""
    dot = text.find(".", 19)
    if dot < 0:
        return text
    end = dot + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[: min(end, dot + 7)] + text[end:] if end - dot > 7 else text


def text(value: Any) -> str | None:
    """A scalar as text (objects and lists as compact JSON); None and "" are None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return compact_json(value)


def compact_json(value: Any) -> str | None:
    """Free-form objects as compact, key-sorted JSON text (as Elastic keeps them in keyword fields)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        raise UnparsableRecordError(TOO_DEEP) from None


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dig(record: Mapping[str, Any], *path: str) -> Any:
    """record[path[0]][path[1]]... or None where a step is missing or not an object."""
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@lru_cache(maxsize=8192)
def ip_or_none(value: str) -> str | None:
    """The IP address in `value`: a bare address, `[v6]:port` or `v4:port`; None when there is none."""
    candidate = value.strip()
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1: candidate.index("]")]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def source_fields(address: Any) -> Flat:
    """`source.address`, and `source.ip` / `related.ip` when the address is an IP."""
    if not isinstance(address, str) or not address.strip():
        return {}
    ip = ip_or_none(address)
    return {"source.address": address, "source.ip": ip, "related.ip": [ip] if ip else None}


def user_fields(name: Any, *, user_id: Any = None, full_name: Any = None, prefix: str = "user") -> Flat:
    """`user.name` (the local part of an e-mail or UPN), `user.email` and `user.domain` for `user@domain`,
    `user.id`, `user.full_name` — as Elastic's integrations split principal names."""
    flat: Flat = {f"{prefix}.id": text(user_id), f"{prefix}.full_name": text(full_name)}
    if isinstance(name, str) and name:
        local, at, domain = name.partition("@")
        if at and local and domain:
            flat.update({f"{prefix}.name": local, f"{prefix}.email": name, f"{prefix}.domain": domain})
        else:
            flat[f"{prefix}.name"] = name
    return flat


def related_users(*values: Any) -> list[str] | None:
    users = list(dict.fromkeys(value for value in values if isinstance(value, str) and value))
    return users or None


def snake_keys(value: Any) -> Any:
    """Keys camelCase -> snake_case at every level (Elastic's layout for okta.*); values unchanged."""
    if isinstance(value, dict):
        return {snake_case(str(key)) if "." not in str(key) else str(key): snake_keys(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [snake_keys(item) for item in value]
    return value
