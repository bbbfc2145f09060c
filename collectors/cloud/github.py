"""GitHub audit log -> ECS (`github.audit`), as Elastic's github integration maps it.

Native shape: audit-log events as the REST API (`GET /orgs/{org}/audit-log`, a JSON array), the JSON
export (NDJSON) and audit-log streaming write them. `_document_id` is `event.id`, `action`
`event.action`, `@timestamp` (else `created_at`; epoch milliseconds or ISO-8601) `@timestamp`, `actor`
`user.name`, `user` (the account acted on) `user.target.name`, `actor_ip` `source.ip`; the event as GitHub
writes it is the JSON field `github` (`github.org`, `github.repo`, ... as Elastic names them).
"""

from __future__ import annotations

from typing import Any

from collectors.base import register_parser
from collectors.cloud.base import CloudAuditParser, Flat, compact_json, parse_time, related_users, source_fields, text
from collectors.errors import UnparsableRecordError

DATASET = "github.audit"


@register_parser
class GitHubAuditParser(CloudAuditParser):
    """GitHub audit-log events: API pages (arrays), NDJSON exports and streams, single events."""

    name = DATASET
    aliases = ("github",)
    datasets = (DATASET,)
    shape = "a GitHub audit-log event (@timestamp or created_at, action, actor, _document_id, ...)"

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        moment = record.get("@timestamp", record.get("created_at"))
        if not record.get("action") or moment is None:
            missing = ", ".join(name for name, value in (("action", record.get("action")),
                                                         ("@timestamp or created_at", moment)) if not value)
            hint = " (`at_sign_timestamp` is a renamed @timestamp)" if "at_sign_timestamp" in record else ""
            raise UnparsableRecordError(f"record lacks {missing}{hint}: expected {self.shape}")
        action = text(record["action"])
        actor, target = text(record.get("actor")), text(record.get("user"))
        flat: Flat = {
            "@timestamp": parse_time(moment, "@timestamp" if "@timestamp" in record else "created_at"),
            "event.id": text(record.get("_document_id")),
            "event.action": action,
            "event.module": "github",
            "event.provider": "github",
            "event.category": ["authentication"] if action and action.startswith("oauth_") else None,
            "user.name": actor,
            "user.id": text(record.get("actor_id")),
            "user.target.name": target,
            "user_agent.original": text(record.get("user_agent")),
            "github": compact_json(record),
            **source_fields(record.get("actor_ip")),
            "related.user": related_users(actor, target),
        }
        return DATASET, flat
