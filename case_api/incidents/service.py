"""Alerts into incidents: entity grouping within a window, and entity risk (risk-based alerting).

An alert joins the open case of its tenant that holds an alert sharing one of its incident entities
within its window (Microsoft Sentinel's alert grouping by entities). An alert that joins no open
case adds its risk to each of its incident entities (Splunk ES risk-based alerting); it opens a case
once one of them has gathered ``risk_threshold`` within a window, and that case takes in the
entity's held alerts. Below the threshold the alert is stored and held, with no case.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, text, tuple_
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertIn
from case_api.cases.models import FINISHED_STATUSES, Case
from case_api.incidents.models import (
    GROUP_KEY_FIELD,
    MAX_ENTITIES_PER_ALERT,
    MAX_ENTITY_VALUE,
    RULE_FIELD,
    AlertEntity,
    IncidentPolicy,
)

Entity = tuple[str, str]

_FINISHED = [s.value for s in FINISHED_STATUSES]
# Namespace of the per-tenant PostgreSQL advisory lock (SQLite serialises writers already).
_TENANT_LOCK_NAMESPACE = 0x43530001


def incident_entities(alert: AlertIn, *, group_key: str, policy: IncidentPolicy) -> set[Entity]:
    """The (field, value) pairs that put ``alert`` in a case: its rule's group-by fields (else the
    policy's) with their values, plus its group key unless that only repeats one of them."""
    fields = alert.incident.group_by if alert.incident.group_by is not None else policy.group_by
    entities = {
        (name, value)
        for name in fields
        for value in alert.entities.get(name, [])
        if value and len(value) <= MAX_ENTITY_VALUE
    }
    if not any(group_key == f"{name}={value}" for name, value in entities):
        entities.add((GROUP_KEY_FIELD, group_key[:MAX_ENTITY_VALUE]))
    return entities


def window_of(alert: AlertIn, policy: IncidentPolicy) -> timedelta:
    seconds = alert.incident.window_seconds
    return policy.window if seconds is None else timedelta(seconds=seconds)


def record_entities(*, session: Session, alert: AlertIn, group_key: str, policy: IncidentPolicy) -> None:
    """Store the entities ``alert`` names (incident entities first), its rule as ``rule.id``, and its risk."""
    grouping = incident_entities(alert, group_key=group_key, policy=policy)
    others = {
        (name, value)
        for name, values in alert.entities.items()
        for value in values
        if value and len(value) <= MAX_ENTITY_VALUE and len(name) <= 100
    }
    others.add((RULE_FIELD, alert.rule.id))
    chosen = [(entity, True) for entity in sorted(grouping)]
    chosen += [(entity, False) for entity in sorted(others - grouping)]
    risk = policy.risk_of(alert.rule.level)
    session.add_all(
        AlertEntity(
            alert_id=alert.id,
            tenant_id=alert.tenant_id,
            field=name,
            value=value,
            grouping=is_grouping,
            risk=risk if is_grouping else 0,
            timestamp=alert.timestamp,
            last_seen=alert.last_seen,
        )
        for (name, value), is_grouping in chosen[:MAX_ENTITIES_PER_ALERT]
    )


def lock_tenant(*, session: Session, tenant_id: str) -> None:
    """Serialise grouping within one tenant: two batches must not both decide to open a case."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:tenant))"),
            {"namespace": _TENANT_LOCK_NAMESPACE, "tenant": tenant_id},
        )


def _near(entities: Collection[Entity], *, tenant_id: str, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Incident-entity rows of ``tenant_id`` naming one of ``entities`` whose alert overlaps [start, end]."""
    return [
        AlertEntity.tenant_id == tenant_id,
        AlertEntity.grouping.is_(True),
        tuple_(AlertEntity.field, AlertEntity.value).in_(sorted(entities)),
        AlertEntity.timestamp <= end,
        AlertEntity.last_seen >= start,
    ]


def matching_open_case(
    *, session: Session, tenant_id: str, entities: Collection[Entity], start: datetime, end: datetime
) -> Case | None:
    """The open case holding an alert that shares an entity within [start, end]; the most recently
    active one when several do (cases are never merged: each keeps its own triage)."""
    latest = func.max(AlertEntity.last_seen)
    query = (
        select(Alert.case_id)
        .join(AlertEntity, (AlertEntity.alert_id == Alert.id) & (AlertEntity.tenant_id == Alert.tenant_id))
        .join(Case, Case.id == Alert.case_id)
        .where(*_near(entities, tenant_id=tenant_id, start=start, end=end), Case.status.not_in(_FINISHED))
        .group_by(Alert.case_id)
        .order_by(latest.desc(), Alert.case_id.desc())
        .limit(1)
    )
    case_id = session.scalars(query).first()
    if case_id is None:
        return None
    return session.scalars(
        select(Case).where(Case.id == case_id).with_for_update().execution_options(populate_existing=True)
    ).one()


def held_alerts(
    *, session: Session, tenant_id: str, entities: Collection[Entity], start: datetime, end: datetime
) -> list[Alert]:
    """Alerts in no case that share an entity within [start, end], oldest first."""
    ids = (
        select(AlertEntity.alert_id)
        .join(Alert, (Alert.id == AlertEntity.alert_id) & (Alert.tenant_id == AlertEntity.tenant_id))
        .where(*_near(entities, tenant_id=tenant_id, start=start, end=end), Alert.case_id.is_(None))
    )
    query = select(Alert).where(Alert.tenant_id == tenant_id, Alert.id.in_(ids)).order_by(Alert.timestamp, Alert.id)
    return list(session.scalars(query))


def entity_risk(
    *, session: Session, tenant_id: str, entity: Entity, at: datetime, until: datetime, window: timedelta
) -> int:
    """The most risk ``entity`` gathered in any window of length ``window`` that overlaps [at, until].

    Every window that could contain the alert is considered, so the outcome does not depend on the
    order alerts arrive in (a late alert counts towards the ones after it as well as before).
    """
    rows = session.execute(
        select(AlertEntity.timestamp, AlertEntity.risk).where(
            *_near([entity], tenant_id=tenant_id, start=at - window, end=until + window)
        )
    ).all()
    return best_window([(row.timestamp, row.risk) for row in rows], window=window, ending_from=at)


def best_window(points: Iterable[tuple[datetime, int]], *, window: timedelta, ending_from: datetime) -> int:
    """Largest sum of risks within ``window`` over windows ending at a point no earlier than ``ending_from``."""
    ordered = sorted(points)
    best = total = 0
    first = 0
    for moment, risk in ordered:
        total += risk
        while ordered[first][0] < moment - window:
            total -= ordered[first][1]
            first += 1
        if moment >= ending_from:
            best = max(best, total)
    return best
