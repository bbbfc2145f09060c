"""AWS CloudTrail records -> ECS, mapped as Elastic's `aws.cloudtrail` integration maps them.

Records arrive one per `RawRecord`: from a file (`collectors.jsonfiles`: the S3 object `{"Records": [...]}`,
a JSON array, NDJSON or one document; plain or gzip, detected by content), or pushed. A record that is
itself `{"Records": [...]}` counts as its records (`origin:record[i]` each).

Every record is redacted (`collectors.redact`) before it is mapped, so neither the mapped fields nor
`event.original` carry session tokens, secret keys or passwords.

Types: a record must be an object with string `eventID`, `eventTime` (ISO-8601, years 1-9999) and
`eventName`; otherwise it is dead-lettered with the reason. Any other field the schema holds as a string
but that arrives as an object, a list, a number or a boolean is stored as its compact JSON text (`true`/
`false` for booleans), never as the wrong type; `managementEvent`/`readOnly` are booleans (`"true"`/
`"false"` accepted) and left empty when they are anything else. A record nested deeper than 254 levels is
dead-lettered (it cannot be kept as JSON text).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from citysoc.deadletter import DeadLetter
from citysoc.schema import nest
from collectors.base import LogParser, Normalised, ParserOptions, register_parser
from collectors.cloud.base import compact_json, mapping, related_users
from collectors.columns import EventColumns, in_time_range
from collectors.errors import UnparsableRecordError
from collectors.files import open_maybe_gzip
from collectors.jsonfiles import read_json_records, split_json
from collectors.records import RawRecord
from collectors.redact import TOO_DEEP, may_hold_secrets, redact_json_text, redact_record

DATASET = "aws.cloudtrail"
_REQUIRED = ("eventID", "eventTime", "eventName")

# CloudTrail key -> aws.cloudtrail.* field (scalars, copied as they are).
_TOP_LEVEL = {
    "eventVersion": "event_version",
    "eventType": "event_type",
    "eventCategory": "event_category",
    "recipientAccountId": "recipient_account_id",
    "requestID": "request_id",
    "sharedEventID": "shared_event_id",
    "vpcEndpointId": "vpc_endpoint_id",
    "errorCode": "error_code",
    "errorMessage": "error_message",
}
_BOOLEANS = {"managementEvent": "management_event", "readOnly": "read_only"}
# Free-form objects kept as compact JSON strings with sorted keys (`json` fields of the schema).
_JSON_OBJECTS = {
    "requestParameters": "request_parameters",
    "responseElements": "response_elements",
    "additionalEventData": "additional_eventdata",
    "serviceEventDetails": "service_event_details",
    "resources": "resources",
}
_USER_IDENTITY = {
    "type": "type",
    "arn": "arn",
    "principalId": "principal_id",
    "accountId": "account_id",
    "accessKeyId": "access_key_id",
    "userName": "user_name",
    "invokedBy": "invoked_by",
}
_SESSION_ISSUER = {
    "type": "type",
    "arn": "arn",
    "principalId": "principal_id",
    "accountId": "account_id",
    "userName": "user_name",
}
_TLS_DETAILS = {
    "tlsVersion": "tls_version",
    "cipherSuite": "cipher_suite",
    "clientProvidedHostHeader": "client_provided_host_header",
}
_PREFIX = "aws.cloudtrail."
# What `record_values` returns, in its order.
COLUMNS: tuple[str, ...] = (
    "@timestamp", "event.id", "event.action", "event.provider", "event.outcome", "event.original", "event.category",
    "cloud.region", "cloud.account.id", "user.id", "user.name", "user_agent.original", "error.code",
    "error.message", "source.address", "source.ip", "related.ip", "related.user",
    *(_PREFIX + name for name in _TOP_LEVEL.values()),
    *(_PREFIX + name for name in _BOOLEANS.values()),
    *(_PREFIX + name for name in _JSON_OBJECTS.values()),
    *(f"{_PREFIX}user_identity.{name}" for name in _USER_IDENTITY.values()),
    *(f"{_PREFIX}user_identity.session_context.session_issuer.{name}" for name in _SESSION_ISSUER.values()),
    f"{_PREFIX}user_identity.session_context.mfa_authenticated",
    f"{_PREFIX}user_identity.session_context.creation_date",
    *(f"{_PREFIX}tls_details.{name}" for name in _TLS_DETAILS.values()),
)
# The same for every CloudTrail event.
CONSTANTS: dict[str, str] = {"event.dataset": DATASET, "event.module": "aws", "event.kind": "event",
                             "cloud.provider": "aws"}
_AUTHENTICATION = ["authentication"]


@register_parser
class CloudTrailParser(LogParser):
    """CloudTrail records from S3 objects, arrays or NDJSON (gzip or not), or pushed one by one."""

    name = "aws.cloudtrail"
    aliases = ("cloudtrail",)
    datasets = (DATASET,)
    line_records = False

    def records(self, path: Path) -> Iterator[RawRecord]:
        return read_json_records(path, received=self.options.ingested(), limits=self.limits)

    def redact(self, text: str) -> str:
        return redact_json_text(text)

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        rows: list[tuple[Any, ...]] = []
        owners: list[int] = []
        dead: list[tuple[int, DeadLetter]] = []
        for index, record in enumerate(records):
            try:
                document = orjson.loads(record.payload)
            except orjson.JSONDecodeError as exc:
                dead.append((index, self.refuse(record, f"record is not JSON: {exc}", tenant=tenant, source=source)))
                continue
            items = document.get("Records") if isinstance(document, dict) else None
            parts = ([(f"{record.origin}:record[{i}]", item) for i, item in enumerate(items)]
                     if isinstance(items, list) else [(record.origin, document)])
            for origin, item in parts:
                try:
                    rows.append(record_values(item, raw=record.payload if len(parts) == 1 else None))
                    owners.append(index)
                except UnparsableRecordError as exc:
                    dead.append((index, self.refuse_item(record, origin, exc.reason, item, tenant=tenant,
                                                     source=source)))
        columns = EventColumns(len(rows))
        for name, values in zip(COLUMNS, zip(*rows, strict=True) if rows else [()] * len(COLUMNS), strict=True):
            columns[name] = list(values)
        for name, value in CONSTANTS.items():
            columns[name] = value
        return Normalised(columns, owners, sorted(dead, key=lambda pair: pair[0]))


def read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, decompressed when it starts with the gzip magic (tools and tests reading small files)."""
    with open_maybe_gzip(path) as handle:
        return handle.read()


def split_records(data: bytes, name: str) -> Iterator[tuple[str, Any, str | None]]:
    """(origin, record, None) per record of a file's bytes, or (origin, raw text, reason) for what is not
    JSON: the records `CloudTrailParser.records` would read, parsed."""
    for record in split_json(iter([data]), name=name, received=datetime.now(UTC)):
        text = record.payload.decode("utf-8", errors="replace")
        if record.problem is not None:
            yield record.origin, text, record.problem.reason
            continue
        try:
            yield record.origin, orjson.loads(record.payload), None
        except orjson.JSONDecodeError as exc:
            yield record.origin, text, f"line is not JSON: {exc}"


def parse_event_time(value: Any) -> datetime:
    """`eventTime` as an aware UTC datetime (CloudTrail writes `2024-07-31T13:06:24Z`)."""
    if not isinstance(value, str):
        raise UnparsableRecordError(f"eventTime is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise UnparsableRecordError(f"eventTime {value[:60]!r} is not an ISO-8601 time") from None
    except OverflowError:  # a year-1 time with a positive offset falls before year 1 in UTC
        moment = None
    if moment is None or not in_time_range(moment):
        raise UnparsableRecordError(f"eventTime {value[:60]!r} is out of range (years 1 to 9999 in UTC)")
    return moment


def normalise(record: Any, *, tenant: str, options: ParserOptions) -> dict[str, Any]:
    """One CloudTrail record as a nested ECS document; raises `UnparsableRecordError` if it is not usable."""
    return nest(flat_fields(record, raw=None, tenant=tenant, options=options))


def flat_fields(record: Any, *, raw: bytes | None, tenant: str, options: ParserOptions) -> dict[str, Any]:
    """One CloudTrail record as flat ECS fields (those that have a value), the constant ones included."""
    values = record_values(record, raw=raw)
    flat = {name: value for name, value in zip(COLUMNS, values, strict=True) if value is not None}
    return {**CONSTANTS, "organization.id": tenant, "event.ingested": options.ingested(), **flat}


def record_values(record: Any, *, raw: bytes | None) -> tuple[Any, ...]:
    """The values of `COLUMNS` for one CloudTrail record (parsed, not yet redacted), None where it has none.

    `raw` is the record's text when known: a record whose text names no secret is not walked for redaction.
    A tuple in a fixed order rather than a dict: a batch becomes columns by transposing, which keeps the
    per-record work small.
    """
    if raw is None or may_hold_secrets(raw):
        record = redact_record(record)
    if not isinstance(record, dict):
        raise UnparsableRecordError(f"record is not a JSON object but {type(record).__name__}")
    missing = [key for key in _REQUIRED if record.get(key) in (None, "")]
    if missing:
        raise UnparsableRecordError(f"record lacks {', '.join(missing)}")
    odd = [f"{key} is not a string but {type(record[key]).__name__}" for key in _REQUIRED
           if not isinstance(record[key], str)]
    if odd:
        raise UnparsableRecordError("; ".join(odd))
    try:
        return _values(record)
    except orjson.JSONEncodeError:
        raise UnparsableRecordError(TOO_DEEP) from None


def _values(record: dict[str, Any]) -> tuple[Any, ...]:
    get = record.get
    identity = mapping(get("userIdentity"))
    session = mapping(identity.get("sessionContext"))
    issuer = mapping(session.get("sessionIssuer"))
    attributes = mapping(session.get("attributes"))
    tls = mapping(get("tlsDetails"))
    error_code = get("errorCode")
    response = get("responseElements")
    failed_console_login = isinstance(response, dict) and response.get("ConsoleLogin") == "Failure"
    user = _user_name(identity, issuer)
    address = get("sourceIPAddress")
    address = address if isinstance(address, str) and address else None
    ip = address if address is not None and _is_ip(address) else None
    related = related_users(user, identity.get("userName"), issuer.get("userName"))
    return (
        parse_event_time(record["eventTime"]),
        record["eventID"],
        record["eventName"],
        _text(get("eventSource")),
        "failure" if error_code or failed_console_login else "success",
        orjson.dumps(record).decode(),
        _AUTHENTICATION if record["eventName"] == "ConsoleLogin" else None,
        _text(get("awsRegion")),
        _text(get("recipientAccountId") or identity.get("accountId")),
        _text(identity.get("principalId")),
        user,
        _text(get("userAgent")),
        _text(error_code),
        _text(get("errorMessage")),
        address,
        ip,
        [ip] if ip else None,
        related,
        *[_text(get(key)) for key in _TOP_LEVEL],
        *[_boolean(get(key)) for key in _BOOLEANS],
        *[compact_json(get(key)) for key in _JSON_OBJECTS],
        *[_text(identity.get(key)) for key in _USER_IDENTITY],
        *[_text(issuer.get(key)) for key in _SESSION_ISSUER],
        _text(attributes.get("mfaAuthenticated")),
        _text(attributes.get("creationDate")),
        *[_text(tls.get(key)) for key in _TLS_DETAILS],
    )


def _user_name(identity: Mapping[str, Any], issuer: Mapping[str, Any]) -> str | None:
    """userIdentity.userName, else the session issuer's userName, else the last part of the ARN."""
    for candidate in (identity.get("userName"), issuer.get("userName")):
        if isinstance(candidate, str) and candidate:
            return candidate
    arn = identity.get("arn")
    if isinstance(arn, str) and arn:
        return arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]
    return None


def _text(value: Any) -> str | None:
    """A value as keyword text. Unlike ``collectors.cloud.base.text``, an empty string stays ``""`` and a number
    is written as JSON writes it (``0.00005``, not Python's ``5e-05``), so stored CloudTrail fields keep their form."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else compact_json(value)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


@lru_cache(maxsize=4096)
def _is_ip(value: str) -> bool:
    """Whether ``sourceIPAddress`` is exactly an IP address, kept as written: unlike
    ``collectors.cloud.base.ip_or_none`` it takes no port, brackets or spaces and does not normalise the text."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
