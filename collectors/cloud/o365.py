"""Microsoft 365 unified audit log -> ECS (`o365.audit`), as Elastic's o365 integration maps it.

Native shapes: the Office 365 Management Activity API's content blobs (a JSON array of audit records), the
records one by one or as NDJSON. `Id` is `event.id`, `Operation` `event.action`, `Workload`
`event.provider`, `RecordType` `event.code`, `CreationTime` (UTC, written without a zone) `@timestamp`,
`UserId` `user.*`, `ClientIP` (with or without a port) `source.ip`, `OrganizationId` `cloud.account.id`;
the record as Microsoft writes it is the JSON field `o365.audit` (Sigma's m365 names read into it).
"""

from __future__ import annotations

from typing import Any

from collectors.base import register_parser
from collectors.cloud.base import (
    CloudAuditParser,
    Flat,
    compact_json,
    parse_time,
    related_users,
    source_fields,
    text,
    user_fields,
)
from collectors.errors import UnparsableRecordError

DATASET = "o365.audit"
_SUCCESS = {"succeeded", "success", "partiallysucceeded", "true"}
_FAILURE = {"failed", "failure", "false"}
_LOGON_OPERATIONS = {"UserLoggedIn", "UserLoginFailed", "PasswordLogonInitialAuthUsingPassword"}


@register_parser
class O365AuditParser(CloudAuditParser):
    """Management Activity API content blobs (arrays), NDJSON or single audit records."""

    name = DATASET
    aliases = ("o365", "m365")
    datasets = (DATASET,)
    shape = "a Microsoft 365 audit record (CreationTime, Id, Operation, Workload, RecordType, UserId, ...)"

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        missing = [key for key in ("CreationTime", "Operation") if not record.get(key)]
        if missing:
            lowered = {str(key).lower() for key in record}
            hint = (" (its keys are lower-cased: not the API's PascalCase record)"
                    if {"creationtime", "operation"} & lowered else "")
            raise UnparsableRecordError(f"record lacks {', '.join(missing)}{hint}: expected {self.shape}")
        operation = text(record["Operation"])
        status = text(record.get("ResultStatus"))
        outcome = ("success" if status.lower() in _SUCCESS else "failure" if status.lower() in _FAILURE
                   else "unknown") if status else None
        if operation == "UserLoginFailed":
            outcome = "failure"
        address = record.get("ClientIP") or record.get("ClientIPAddress") or record.get("ActorIpAddress")
        user = record.get("UserId")
        flat: Flat = {
            "@timestamp": parse_time(record["CreationTime"], "CreationTime"),
            "event.id": text(record.get("Id")),
            "event.action": operation,
            "event.provider": text(record.get("Workload")),
            "event.code": text(record.get("RecordType")),
            "event.module": "o365",
            "event.outcome": outcome,
            "event.category": ["authentication"] if operation in _LOGON_OPERATIONS else None,
            "cloud.provider": "microsoft",
            "cloud.account.id": text(record.get("OrganizationId")),
            "user_agent.original": text(record.get("UserAgent")),
            "o365.audit": compact_json(record),
            **source_fields(address),
            **user_fields(user, user_id=user),
            "related.user": related_users(user),
        }
        return DATASET, flat
