"""Alert storage and queries. Reads take the caller's tenant scope (``None`` = all tenants)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
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


# Rows per INSERT: 14 parameters each stays under SQLite's 32,766 bound parameters.
_INSERT_CHUNK = 1000


def insert_new_alerts(*, session: Session, alerts: Sequence[tuple[AlertIn, str]]) -> set[tuple[str, str]]:
    """Store each ``(alert, group_key)`` unless its tenant has an alert with its id; the (tenant, id) stored.

    Multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, in the order given (callers sort by
    (tenant, id), the global lock order), makes this safe against concurrent posts of the same alerts on
    PostgreSQL as well as SQLite: the loser of a race sees duplicates, not an error.
    """
    insert = insert_for(session)
    received = utcnow()
    stored: set[tuple[str, str]] = set()
    for first in range(0, len(alerts), _INSERT_CHUNK):
        rows = [
            {
                "id": alert.id,
                "tenant_id": alert.tenant_id,
                "case_id": None,
                "rule_id": alert.rule.id,
                "rule_title": alert.rule.title,
                "rule_level": alert.rule.level,
                "rule_tags": list(alert.rule.tags),
                "timestamp": alert.timestamp,
                "last_seen": alert.last_seen,
                "event_ids": list(alert.event.ids),
                "entities": alert.entities,
                "group_key": group_key,
                "document": alert.document(),
                "received_at": received,
            }
            for alert, group_key in alerts[first : first + _INSERT_CHUNK]
        ]
        statement = (
            insert(Alert)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
            .returning(Alert.tenant_id, Alert.id)
        )
        stored.update((tenant_id, alert_id) for tenant_id, alert_id in session.execute(statement))
    return stored


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


def alert_volume(
    *, session: Session, scope: Collection[str] | None, since: datetime, until: datetime, tenant_id: str | None = None,
) -> list[tuple[str, str, int]]:
    """Alerts received per dataset and UTC day in ``[since, until)``: ``(dataset, "YYYY-MM-DD", count)``, in the
    caller's scope. The dataset is the alert's ``event.dataset`` (``unknown`` when the correlator gave none)."""
    dataset = func.coalesce(Alert.document["event"]["dataset"].as_string(), "unknown")
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Alert.received_at), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", Alert.received_at)
    query = scoped(select(dataset, day, func.count()), Alert.tenant_id, scope=scope, tenant_id=tenant_id)
    query = query.where(Alert.received_at >= since, Alert.received_at < until).group_by(dataset, day)
    return [(str(name), str(when), int(count)) for name, when, count in session.execute(query.order_by(dataset, day))]
