"""Alerts into incidents: entity grouping within a window, and entity risk (risk-based alerting).

An alert joins the open case of its tenant that holds an alert sharing one of its incident entities
within its window (Microsoft Sentinel's alert grouping by entities). An alert that joins no open
case adds its risk to each of its incident entities (Splunk ES risk-based alerting); it opens a case
once one of them has gathered ``risk_threshold`` within a window, and that case takes in the
entity's held alerts. Below the threshold the alert is stored and held, with no case.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, text, tuple_
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertIn
from case_api.campaigns.indicators import INDICATOR_FIELD_PREFIX, alert_indicators
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


def entity_rows(alert: AlertIn, *, group_key: str, policy: IncidentPolicy) -> list[dict[str, Any]]:
    """The ``alert_entities`` rows of ``alert``: incident entities first, then its rule and its typed
    indicators (``indicator:<kind>``, what campaigns match on), then its other raw entities."""
    grouping = incident_entities(alert, group_key=group_key, policy=policy)
    indicators = {
        (name, value) for name, value in alert_indicators(alert.entities) if len(value) <= MAX_ENTITY_VALUE
    } | {(RULE_FIELD, alert.rule.id)}
    others = {
        (name, value)
        for name, values in alert.entities.items()
        if not _reserved(name)
        for value in values
        if value and len(value) <= MAX_ENTITY_VALUE and len(name) <= 100
    }
    chosen = [(entity, True) for entity in sorted(grouping)]
    chosen += [(entity, False) for entity in sorted(indicators - grouping)]
    chosen += [(entity, False) for entity in sorted(others - grouping - indicators)]
    risk = policy.risk_of(alert.rule.level)
    return [
        {
            "alert_id": alert.id,
            "tenant_id": alert.tenant_id,
            "field": name,
            "value": value,
            "grouping": is_grouping,
            "risk": risk if is_grouping else 0,
            "timestamp": alert.timestamp,
            "last_seen": alert.last_seen,
        }
        for (name, value), is_grouping in chosen[:MAX_ENTITIES_PER_ALERT]
    ]


def _reserved(name: str) -> bool:
    """Entity row fields only the case API writes: an alert naming one could pose as another rule or kind."""
    return name == RULE_FIELD or name.startswith(INDICATOR_FIELD_PREFIX)


def record_entities(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store entity rows (:func:`entity_rows`) in one statement (executemany, no ORM unit of work)."""
    if rows:
        session.execute(insert(AlertEntity), list(rows))


def lock_tenant(*, session: Session, tenant_id: str) -> None:
    """Serialise grouping within one tenant: two batches must not both decide to open a case."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:tenant))"),
            {"namespace": _TENANT_LOCK_NAMESPACE, "tenant": tenant_id},
        )


@dataclass(frozen=True)
class Neighbour:
    """An incident-entity row near an alert: the entity, its alert's times and risk, and that alert's case."""

    entity: Entity
    alert_id: str
    case_id: int | None
    case_open: bool
    timestamp: datetime
    last_seen: datetime
    risk: int


_NEIGHBOURS = (
    select(
        AlertEntity.field,
        AlertEntity.value,
        AlertEntity.alert_id,
        Alert.case_id,
        Case.status,
        AlertEntity.timestamp,
        AlertEntity.last_seen,
        AlertEntity.risk,
    )
    .join(Alert, (Alert.id == AlertEntity.alert_id) & (Alert.tenant_id == AlertEntity.tenant_id))
    .outerjoin(Case, Case.id == Alert.case_id)
    .where(
        AlertEntity.tenant_id == bindparam("tenant"),
        AlertEntity.grouping.is_(True),
        tuple_(AlertEntity.field, AlertEntity.value).in_(bindparam("entities", expanding=True)),
        AlertEntity.timestamp <= bindparam("end"),
        AlertEntity.last_seen >= bindparam("start"),
    )
)


def neighbours(
    *, session: Session, tenant_id: str, entities: Collection[Entity], start: datetime, end: datetime
) -> list[Neighbour]:
    """Every incident-entity row of ``tenant_id`` naming one of ``entities`` whose alert overlaps [start, end].

    One indexed query (``ix_alert_entities_tenant_entity``) answers grouping, held alerts and risk; the
    statement is built once (building it per alert cost more than running it).
    """
    rows = session.execute(
        _NEIGHBOURS, {"tenant": tenant_id, "entities": sorted(entities), "start": start, "end": end}
    )
    return [
        Neighbour(
            entity=(row.field, row.value),
            alert_id=row.alert_id,
            case_id=row.case_id,
            case_open=row.status is not None and row.status not in _FINISHED,
            timestamp=row.timestamp,
            last_seen=row.last_seen,
            risk=row.risk,
        )
        for row in rows
    ]


def matching_open_case(near: Sequence[Neighbour]) -> int | None:
    """The open case holding a neighbour; the most recently active one when several do (cases are never
    merged: each keeps its own triage)."""
    latest: dict[int, datetime] = {}
    for row in near:
        if row.case_id is not None and row.case_open:
            latest[row.case_id] = max(latest.get(row.case_id, row.last_seen), row.last_seen)
    if not latest:
        return None
    return max(latest, key=lambda case_id: (latest[case_id], case_id))


def held_alert_ids(near: Sequence[Neighbour], *, excluding: str) -> set[str]:
    """Neighbours' alerts that are in no case."""
    return {row.alert_id for row in near if row.case_id is None and row.alert_id != excluding}


def entity_risks(near: Sequence[Neighbour], *, at: datetime, window: timedelta) -> dict[Entity, int]:
    """For each entity, the most risk it gathered in a window of length ``window`` that reaches ``at`` or later.

    Every window around the alert counts, so the outcome does not depend on the order alerts arrive in
    (a late alert counts towards the ones after it as well as before). Each alert counts once per entity.
    """
    points: dict[Entity, dict[str, tuple[datetime, int]]] = {}
    for row in near:
        points.setdefault(row.entity, {})[row.alert_id] = (row.timestamp, row.risk)
    return {
        entity: best_window(list(by_alert.values()), window=window, ending_from=at)
        for entity, by_alert in points.items()
    }


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
