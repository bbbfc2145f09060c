"""Alert storage and queries. Reads take the caller's tenant scope (``None`` = all tenants)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertIn
from case_api.db import insert_for, utcnow
from case_api.scope import scoped

# Entity fields that name "who or what" an alert is about, most specific first.
GROUPING_FIELDS = ("user.name", "source.ip", "host.name", "cloud.account.id")


def derive_group_key(alert: AlertIn) -> str:
    """The key alerts are grouped into cases by.

    The correlator's ``group_key`` wins. Otherwise the first of :data:`GROUPING_FIELDS` present in
    the alert's entities (its first value, e.g. ``user.name=christophe``), else ``rule.id=<id>``.
    """
    if alert.group_key:
        return alert.group_key
    for field in GROUPING_FIELDS:
        values = [v for v in alert.entities.get(field, []) if v]
        if values:
            return f"{field}={values[0]}"
    return f"rule.id={alert.rule.id}"


def insert_alert_if_new(*, session: Session, alert: AlertIn, group_key: str) -> bool:
    """Store ``alert`` unless its tenant has an alert with its id; ``True`` if it was stored.

    ``INSERT ... ON CONFLICT DO NOTHING`` makes this safe against concurrent posts of the same
    alert on PostgreSQL as well as SQLite (the loser of a race sees a duplicate, not an error).
    """
    insert = insert_for(session)
    statement = (
        insert(Alert)
        .values(
            id=alert.id,
            tenant_id=alert.tenant_id,
            case_id=None,
            rule_id=alert.rule.id,
            rule_title=alert.rule.title,
            rule_level=alert.rule.level,
            rule_tags=list(alert.rule.tags),
            timestamp=alert.timestamp,
            last_seen=alert.last_seen,
            event_ids=list(alert.event.ids),
            entities=alert.entities,
            group_key=group_key,
            document=alert.document(),
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        .returning(Alert.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def list_alerts(
    *,
    session: Session,
    scope: Collection[str] | None,
    tenant_id: str | None = None,
    case_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Alert]:
    """Newest alerts first, only from tenants in ``scope``."""
    query = scoped(select(Alert), Alert.tenant_id, scope=scope, tenant_id=tenant_id)
    if case_id is not None:
        query = query.where(Alert.case_id == case_id)
    query = query.order_by(Alert.timestamp.desc(), Alert.id).limit(limit).offset(offset)
    return list(session.scalars(query))
