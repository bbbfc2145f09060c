"""Alert ingest: store new alerts and group them into cases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertIn
from case_api.alerts.service import derive_group_key, insert_alert_if_new
from case_api.campaigns.rules import CampaignRule
from case_api.campaigns.service import link_campaigns
from case_api.incidents.flows import place_alert
from case_api.incidents.models import IncidentPolicy
from case_api.incidents.service import lock_tenant, record_entities
from case_api.tenants.service import require_tenants

log = structlog.get_logger(__name__)

INGEST_ATTEMPTS = 3
# PostgreSQL: deadlock_detected, serialization_failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
DEFAULT_POLICY = IncidentPolicy()


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    pending: int = 0
    case_ids: list[int] = field(default_factory=list)
    campaign_ids: list[int] = field(default_factory=list)


def ingest_alerts(
    *,
    session: Session,
    alerts: Sequence[AlertIn],
    actor: str,
    policy: IncidentPolicy = DEFAULT_POLICY,
    campaign_rules: Sequence[CampaignRule] = (),
) -> IngestResult:
    """Ingest a batch (see :func:`_ingest_once`), retrying on transient lock errors.

    The batch takes its locks in a global order, so deadlocks should not happen; the retry is a
    safety net (PostgreSQL deadlock/serialization failures, SQLite "database is locked"). The
    batch is all-or-nothing, so running it again is safe.
    """
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            return _ingest_once(
                session=session, alerts=alerts, actor=actor, policy=policy, campaign_rules=campaign_rules
            )
        except OperationalError as exc:
            session.rollback()
            if attempt == INGEST_ATTEMPTS or not _is_transient(exc):
                raise
            log.warning("alert batch retried", attempt=attempt, error=str(exc.orig))
    raise AssertionError("unreachable")


def _is_transient(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


def _ingest_once(
    *,
    session: Session,
    alerts: Sequence[AlertIn],
    actor: str,
    policy: IncidentPolicy,
    campaign_rules: Sequence[CampaignRule],
) -> IngestResult:
    """Store the alerts not seen before, place each in its tenant's incidents (``incidents.flows``)
    and link the cases that took them to city-wide campaigns (``campaigns.service``).

    One transaction for the whole batch: an unknown tenant rejects it before anything is stored,
    and a failure half-way stores nothing. Alerts already stored (same id) count as duplicates and
    change no case, so re-posting a batch is a no-op.

    Locks are taken in one global order (alert ids ascending, tenants ascending, campaigns), so batches
    posted concurrently wait for each other instead of deadlocking.
    """
    require_tenants(session=session, tenant_ids={alert.tenant_id for alert in alerts})
    result = IngestResult()
    new_by_tenant: dict[str, list[AlertIn]] = defaultdict(list)
    for alert_in in sorted(alerts, key=lambda a: a.id):
        group_key = derive_group_key(alert_in)
        if insert_alert_if_new(session=session, alert=alert_in, group_key=group_key):
            result.created += 1
            record_entities(session=session, alert=alert_in, group_key=group_key, policy=policy)
            new_by_tenant[alert_in.tenant_id].append(alert_in)
        else:
            result.duplicates += 1

    case_ids: set[int] = set()
    placed: list[Alert] = []
    for tenant_id in sorted(new_by_tenant):
        lock_tenant(session=session, tenant_id=tenant_id)
        # Oldest first, so a new case takes its title from the alert that started it.
        for alert_in in sorted(new_by_tenant[tenant_id], key=lambda a: (a.timestamp, a.id)):
            alert = session.get_one(Alert, alert_in.id)
            if alert.case_id is None:  # else an earlier alert of this batch took it in
                placed += place_alert(session=session, alert=alert, alert_in=alert_in, policy=policy, actor=actor)
            if alert.case_id is None:
                result.pending += 1
            else:
                case_ids.add(alert.case_id)
    result.case_ids = sorted(case_ids)
    result.campaign_ids = sorted(link_campaigns(session=session, alerts=placed, rules=campaign_rules))
    session.commit()
    log.info(
        "alerts ingested",
        created=result.created,
        duplicates=result.duplicates,
        pending=result.pending,
        cases=result.case_ids,
        campaigns=result.campaign_ids,
    )
    return result
