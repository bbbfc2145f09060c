"""AWS CloudTrail files -> ECS, mapped as Elastic's `aws.cloudtrail` integration maps them.

Accepted files (plain or gzip, detected by the magic bytes whatever the suffix):
- the object CloudTrail writes to S3: `{"Records": [record, ...]}`;
- a JSON array of records (what `aws cloudtrail lookup-events` tooling and Stratus Red Team emit);
- NDJSON: one record per line (what most forwarders and exports write).

Every record is redacted (`collectors.redact`) before it is mapped, so neither the mapped fields nor
`event.original` carry session tokens, secret keys or passwords. Bad records become dead letters
whose origin is `file:record[i]` (arrays) or `file:line` (NDJSON); a file that is not JSON at all is
one dead letter for the whole file.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from citysoc.deadletter import DeadLetter
from citysoc.schema import nest
from collectors.base import LogParser, ParsedEvent, ParserOptions, register_parser
from collectors.errors import UnparsableRecordError
from collectors.files import open_maybe_gzip
from collectors.redact import redact_json_text, redact_record

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


@register_parser
class CloudTrailParser(LogParser):
    """CloudTrail records from S3 objects, arrays or NDJSON, gzip or not."""

    name = "aws.cloudtrail"
    aliases = ("cloudtrail",)
    datasets = (DATASET,)

    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        def dead(origin: str, reason: str, raw: str) -> DeadLetter:
            return DeadLetter(tenant=tenant, source=source, origin=origin, reason=reason, raw=raw)

        try:
            data = read_maybe_gzip(path)
        except (OSError, EOFError, zlib.error) as exc:
            yield dead(str(path), f"cannot read the file (corrupt gzip?): {exc}", "")
            return
        for origin, record, failure in split_records(data, str(path)):
            if failure is not None:
                yield dead(origin, failure, redact_json_text(record))
                continue
            redacted = redact_record(record)
            try:
                doc = normalise(redacted, tenant=tenant, options=self.options)
            except UnparsableRecordError as exc:
                yield dead(origin, exc.reason, orjson.dumps(redacted).decode())
                continue
            yield ParsedEvent(DATASET, doc)


def read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, decompressed when it starts with the gzip magic (whatever its suffix)."""
    with open_maybe_gzip(path) as handle:
        return handle.read()


def split_records(data: bytes, name: str) -> Iterator[tuple[str, Any, str | None]]:
    """Yield (origin, record, None) per record, or (origin, raw text, reason) for what is not JSON."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.strip():
        return
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        lines = data.splitlines()
        first = next((line for line in lines if line.strip()), b"")
        if not _is_json_object(first):
            text = data.decode("utf-8", errors="replace")
            yield name, text, f"not JSON (expected a {{\"Records\": [...]}} object, an array or NDJSON): {exc}"
            return
        yield from _ndjson(lines, name)
        return
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        records: list[Any] = document["Records"]
    elif isinstance(document, list):
        records = document
    elif isinstance(document, dict):  # NDJSON of one line, or a lone record
        yield f"{name}:1", document, None
        return
    else:
        reason = "JSON, but not CloudTrail records: expected an object or an array"
        yield name, data.decode("utf-8", errors="replace"), reason
        return
    for index, record in enumerate(records):
        yield f"{name}:record[{index}]", record, None


def _ndjson(lines: list[bytes], name: str) -> Iterator[tuple[str, Any, str | None]]:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield f"{name}:{lineno}", orjson.loads(line), None
        except orjson.JSONDecodeError as exc:
            yield f"{name}:{lineno}", line.decode("utf-8", errors="replace"), f"line is not JSON: {exc}"


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def compact_json(value: Any) -> str:
    """The compact, key-sorted JSON text Elastic's integration keeps for free-form objects."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_event_time(value: Any) -> datetime:
    """`eventTime` as an aware UTC datetime (CloudTrail writes `2024-07-31T13:06:24Z`)."""
    if not isinstance(value, str):
        raise UnparsableRecordError(f"eventTime is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnparsableRecordError(f"eventTime {value!r} is not an ISO-8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def normalise(record: Any, *, tenant: str, options: ParserOptions) -> dict[str, Any]:
    """One (already redacted) CloudTrail record as a nested ECS document; raises if it is not usable."""
    if not isinstance(record, dict):
        raise UnparsableRecordError(f"record is not a JSON object but {type(record).__name__}")
    missing = [key for key in _REQUIRED if not isinstance(record.get(key), str) or not record[key]]
    if missing:
        raise UnparsableRecordError(f"record lacks {', '.join(missing)}")

    identity = _mapping(record.get("userIdentity"))
    session = _mapping(identity.get("sessionContext"))
    issuer = _mapping(session.get("sessionIssuer"))
    attributes = _mapping(session.get("attributes"))
    error_code = record.get("errorCode")
    response = record.get("responseElements")
    failed_console_login = isinstance(response, dict) and response.get("ConsoleLogin") == "Failure"

    flat: dict[str, Any] = {
        "@timestamp": parse_event_time(record["eventTime"]),
        "organization.id": tenant,
        "event.id": record["eventID"],
        "event.action": record["eventName"],
        "event.provider": record.get("eventSource"),
        "event.dataset": DATASET,
        "event.module": "aws",
        "event.kind": "event",
        "event.outcome": "failure" if error_code or failed_console_login else "success",
        "event.ingested": options.ingested(),
        "event.original": orjson.dumps(record).decode(),
        "cloud.provider": "aws",
        "cloud.region": record.get("awsRegion"),
        "cloud.account.id": record.get("recipientAccountId") or identity.get("accountId"),
        "user.id": identity.get("principalId"),
        "user.name": _user_name(identity, issuer),
        "user_agent.original": record.get("userAgent"),
        "error.code": error_code,
        "error.message": record.get("errorMessage"),
    }
    if record["eventName"] == "ConsoleLogin":
        flat["event.category"] = ["authentication"]
    address = record.get("sourceIPAddress")
    if isinstance(address, str) and address:
        flat["source.address"] = address
        if _is_ip(address):
            flat["source.ip"] = address
            flat["related.ip"] = [address]
    related_users = _unique([flat["user.name"], identity.get("userName"), issuer.get("userName")])
    if related_users:
        flat["related.user"] = related_users

    prefix = "aws.cloudtrail."
    flat.update({prefix + name: _text(record.get(key)) for key, name in _TOP_LEVEL.items()})
    flat.update({prefix + name: _boolean(record.get(key)) for key, name in _BOOLEANS.items()})
    flat.update({prefix + name: compact_json(record[key]) for key, name in _JSON_OBJECTS.items()
                 if record.get(key) is not None})
    flat.update({f"{prefix}user_identity.{name}": _text(identity.get(key)) for key, name in _USER_IDENTITY.items()})
    flat.update({f"{prefix}user_identity.session_context.session_issuer.{name}": _text(issuer.get(key))
                 for key, name in _SESSION_ISSUER.items()})
    flat[f"{prefix}user_identity.session_context.mfa_authenticated"] = _text(attributes.get("mfaAuthenticated"))
    flat[f"{prefix}user_identity.session_context.creation_date"] = _text(attributes.get("creationDate"))
    tls = _mapping(record.get("tlsDetails"))
    flat.update({f"{prefix}tls_details.{name}": _text(tls.get(key)) for key, name in _TLS_DETAILS.items()})
    return nest({name: value for name, value in flat.items() if value is not None})


def _user_name(identity: Mapping[str, Any], issuer: Mapping[str, Any]) -> str | None:
    """userIdentity.userName, else the session issuer's userName, else the last part of the ARN."""
    for candidate in (identity.get("userName"), issuer.get("userName")):
        if isinstance(candidate, str) and candidate:
            return candidate
    arn = identity.get("arn")
    if isinstance(arn, str) and arn:
        return arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
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


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _unique(values: list[Any]) -> list[str]:
    return list(dict.fromkeys(value for value in values if isinstance(value, str) and value))
