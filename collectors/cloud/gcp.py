"""Google Cloud audit logs -> ECS (`gcp.audit`), as Elastic's gcp integration maps them.

Native shapes: Cloud Logging `LogEntry` objects whose `protoPayload` is an `AuditLog`, as a log sink exports
them (NDJSON, a JSON array, `{"entries": [...]}` from `entries.list`), and as Pub/Sub carries them: a push
request `{"message": {"data": <base64 LogEntry>, ...}, "subscription": ...}`, a pull response
`{"receivedMessages": [...]}` or one `PubsubMessage`. `insertId` is `event.id`, `timestamp` `@timestamp`,
`methodName` `event.action`, `serviceName` `event.provider`, `authenticationInfo.principalEmail`
`user.*`, `requestMetadata.callerIp` `source.ip`, the project `cloud.project.id` and `cloud.account.id`;
the outcome is `failure` when `status.code` is set and not 0.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from collectors.base import register_parser
from collectors.cloud.base import (
    CloudAuditParser,
    Flat,
    compact_json,
    dig,
    mapping,
    parse_time,
    related_users,
    source_fields,
    text,
    user_fields,
)
from collectors.columns import int64_or_none
from collectors.errors import UnparsableRecordError

DATASET = "gcp.audit"
AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"


def _message_entry(message: Any) -> Any:
    """The LogEntry a Pub/Sub message carries (base64 `data`)."""
    data = mapping(message).get("data")
    if not isinstance(data, str):
        raise UnparsableRecordError("a Pub/Sub message without base64 `data`")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnparsableRecordError("a Pub/Sub message whose `data` is not base64") from None
    try:
        return orjson.loads(decoded)
    except orjson.JSONDecodeError as exc:
        raise UnparsableRecordError(f"a Pub/Sub message whose data is not a JSON LogEntry: {exc}") from None


@register_parser
class GcpAuditParser(CloudAuditParser):
    """Cloud Logging audit entries: sink exports, entries.list pages, Pub/Sub push and pull messages."""

    name = DATASET
    aliases = ("gcp",)
    datasets = (DATASET,)
    shape = "a Cloud Logging LogEntry with an AuditLog protoPayload (insertId, timestamp, protoPayload, ...)"

    def unwrap(self, document: Any) -> list[Any] | None:
        if not isinstance(document, dict):
            return None
        if isinstance(document.get("message"), dict):  # push request, or one ReceivedMessage
            return [_message_entry(document["message"])]
        if isinstance(document.get("receivedMessages"), list):
            return [_message_entry(mapping(item).get("message")) for item in document["receivedMessages"]]
        if isinstance(document.get("entries"), list):
            return list(document["entries"])
        if "data" in document and "protoPayload" not in document and ("messageId" in document
                                                                      or "attributes" in document):
            return [_message_entry(document)]
        return None

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        payload = record.get("protoPayload")
        if not isinstance(payload, dict):
            other = next((key for key in ("jsonPayload", "textPayload") if key in record), None)
            raise UnparsableRecordError(
                (f"a LogEntry with a {other}, not an audit log" if other else "record lacks protoPayload")
                + f": expected {self.shape}")
        kind = payload.get("@type")
        if kind is not None and kind != AUDIT_LOG_TYPE:
            raise UnparsableRecordError(f"protoPayload is a {kind!r}, not an AuditLog: expected {self.shape}")
        moment = record.get("timestamp") or record.get("receiveTimestamp")
        if not moment or not payload.get("methodName"):
            missing = ", ".join(name for name, value in (("timestamp", moment),
                                                         ("protoPayload.methodName", payload.get("methodName")))
                                if not value)
            raise UnparsableRecordError(f"record lacks {missing}: expected {self.shape}")
        status = mapping(payload.get("status"))
        code = status.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else int64_or_none(text(code))
        log_name = text(record.get("logName"))
        project = text(dig(record, "resource", "labels", "project_id"))
        if project is None and log_name and log_name.startswith("projects/"):
            project = log_name.split("/")[1]
        principal = dig(payload, "authenticationInfo", "principalEmail")
        method = text(payload["methodName"])
        flat: Flat = {
            "@timestamp": parse_time(moment, "timestamp"),
            "event.id": text(record.get("insertId")),
            "event.action": method,
            "event.provider": text(payload.get("serviceName")),
            "event.module": "gcp",
            "event.outcome": "failure" if code else "success",
            "log.logger": log_name,
            "cloud.provider": "gcp",
            "cloud.project.id": project,
            "cloud.account.id": project,
            "user_agent.original": text(dig(payload, "requestMetadata", "callerSuppliedUserAgent")),
            "gcp.audit.type": text(kind),
            "gcp.audit.method_name": method,
            "gcp.audit.service_name": text(payload.get("serviceName")),
            "gcp.audit.resource_name": text(payload.get("resourceName")),
            "gcp.audit.authentication_info.principal_email": text(principal),
            "gcp.audit.status.code": code,
            "gcp.audit.status.message": text(status.get("message")),
            "gcp.audit.request": compact_json(payload.get("request")),
            "gcp.audit.response": compact_json(payload.get("response")),
            "gcp.audit.authorization_info": compact_json(payload.get("authorizationInfo")),
            **source_fields(dig(payload, "requestMetadata", "callerIp")),
            **user_fields(principal),
            "related.user": related_users(principal),
        }
        return DATASET, flat
