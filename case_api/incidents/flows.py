"""Placing one stored alert: into a matching open case, into a new case past the risk threshold, or held."""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertIn
from case_api.cases.models import Case
from case_api.cases.service import add_alert_to_case, create_case
from case_api.incidents.models import IncidentPolicy
from case_api.incidents.service import (
    entity_risks,
    held_alert_ids,
    incident_entities,
    matching_open_case,
    neighbours,
    window_of,
)

log = structlog.get_logger(__name__)


def case_title(alert: Alert) -> str:
    return f"{alert.rule_title} ({alert.group_key})"


def place_alert(
    *, session: Session, alert: Alert, alert_in: AlertIn, policy: IncidentPolicy, actor: str
) -> list[Alert]:
    """Put ``alert`` (stored, in no case yet) into its incident; the alerts that got a case by it.

    The caller holds the tenant's grouping lock. A case that takes the alert also takes the held
    alerts sharing one of its incident entities within the window. An empty list: the alert is
    held as risk only.
    """
    entities = incident_entities(alert_in, group_key=alert.group_key, policy=policy)
    window = window_of(alert_in, policy)
    start, end = alert.timestamp - window, alert.last_seen + window
    near = neighbours(session=session, tenant_id=alert.tenant_id, entities=entities, start=start, end=end)
    case_id = matching_open_case(near)
    if case_id is not None:
        case = session.get_one(Case, case_id, with_for_update=True, populate_existing=True)
    else:
        risks = entity_risks(near, at=alert.timestamp, window=window)
        (field, value), risk = max(risks.items(), key=lambda item: (item[1], item[0]))
        if risk < policy.risk_threshold:
            log.debug("alert held as risk", alert_id=alert.id, tenant=alert.tenant_id, risk=risk)
            return []
        case = create_case(
            session=session,
            tenant_id=alert.tenant_id,
            group_key=alert.group_key,
            title=case_title(alert),
            seen_at=alert.timestamp,
            actor=actor,
            reason={"risk": {"entity": f"{field}={value}", "score": risk, "threshold": policy.risk_threshold}},
        )
    held_ids = held_alert_ids(near, excluding=alert.id)
    held = [session.get_one(Alert, (alert.tenant_id, alert_id)) for alert_id in held_ids]
    members = sorted({alert, *held}, key=lambda a: (a.timestamp, a.id))
    for member in members:
        add_alert_to_case(session=session, case=case, alert=member, actor=actor)
    return members
