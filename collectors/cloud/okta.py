"""Okta System Log -> ECS (`okta.system`), as Elastic's okta integration maps it.

Native shapes: `LogEvent` objects, one by one or as the JSON array a System Log API page returns (or
NDJSON), and event-hook deliveries `{"eventType": "com.okta.event_hook", "data": {"events": [...]}}`.
`uuid` is `event.id`, `eventType` `event.action`, `published` `@timestamp`; the actor is `user.*`, the
first target of type User is `user.target.*`, `client.ipAddress` is `source.ip`; the whole event, its keys
snake_cased, is the JSON field `okta` (`okta.debug_context.debug_data.request_uri`, as Elastic names it).
"""

from __future__ import annotations

from typing import Any

from collectors.base import register_parser
from collectors.cloud.base import (
    CloudAuditParser,
    Flat,
    compact_json,
    dig,
    mapping,
    parse_time,
    related_users,
    snake_keys,
    source_fields,
    text,
    user_fields,
)
from collectors.errors import UnparsableRecordError

DATASET = "okta.system"
HOOK_EVENT_TYPE = "com.okta.event_hook"
_OUTCOMES = {"SUCCESS": "success", "ALLOW": "success", "FAILURE": "failure", "DENY": "failure"}


@register_parser
class OktaSystemLogParser(CloudAuditParser):
    """Okta System Log events: API pages (arrays), NDJSON, single events, event-hook deliveries."""

    name = DATASET
    aliases = ("okta",)
    datasets = (DATASET,)
    shape = "an Okta System Log LogEvent (uuid, published, eventType, actor, ...)"

    def unwrap(self, document: Any) -> list[Any] | None:
        if isinstance(document, dict) and document.get("eventType") == HOOK_EVENT_TYPE:
            events = dig(document, "data", "events")
            if not isinstance(events, list):
                raise UnparsableRecordError("an Okta event hook without data.events")
            return events
        return None

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        missing = [key for key in ("published", "eventType") if not record.get(key)]
        if missing:
            raise UnparsableRecordError(f"record lacks {', '.join(missing)}: expected {self.shape}")
        if not isinstance(record["eventType"], str):
            raise UnparsableRecordError("eventType is not a string")
        actor = mapping(record.get("actor"))
        client = mapping(record.get("client"))
        outcome = mapping(record.get("outcome"))
        found = record.get("target")
        targets: list[Any] = found if isinstance(found, list) else []
        target = next((mapping(item) for item in targets if mapping(item).get("type") == "User"), {})
        action = record["eventType"]
        result = outcome.get("result")
        flat: Flat = {
            "@timestamp": parse_time(record["published"], "published"),
            "event.id": text(record.get("uuid")),
            "event.action": action,
            "event.module": "okta",
            "event.provider": "okta",
            "event.outcome": _OUTCOMES.get(result.upper(), "unknown") if isinstance(result, str) else None,
            "event.category": ["authentication"] if action.startswith(("user.session.", "user.authentication.",
                                                                       "policy.evaluate_sign_on")) else None,
            "message": text(record.get("displayMessage")),
            "user_agent.original": text(dig(client, "userAgent", "rawUserAgent")),
            "cloud.provider": "okta",
            "okta": compact_json(snake_keys(record)),
            **source_fields(client.get("ipAddress")),
            **user_fields(actor.get("alternateId"), user_id=actor.get("id"), full_name=actor.get("displayName")),
            **user_fields(target.get("alternateId"), user_id=target.get("id"), prefix="user.target"),
            "related.user": related_users(actor.get("alternateId"), target.get("alternateId")),
        }
        flat.pop("user.target.full_name", None)
        flat.pop("user.target.domain", None)
        return DATASET, flat
