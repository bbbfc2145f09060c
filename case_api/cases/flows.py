"""Alert ingest: store new alerts and group them into cases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from case_api.alerts.models import Alert, AlertIn, RejectedAlert
from case_api.alerts.service import derive_group_key, insert_new_alerts
from case_api.campaigns.rules import CampaignRule
from case_api.campaigns.service import link_campaigns
from case_api.cases.models import Case
from case_api.errors import UnregisteredTenantError
from case_api.incidents.flows import place_alert
from case_api.incidents.models import IncidentPolicy
from case_api.incidents.service import entity_rows, lock_tenant, record_entities
from case_api.notifications.service import SocContacts, notify_new_cases
from case_api.tenants.service import known_tenants

log = structlog.get_logger(__name__)

INGEST_ATTEMPTS = 5
# PostgreSQL: deadlock_detected, serialization_failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
DEFAULT_POLICY = IncidentPolicy()
NO_SOC_CONTACTS = SocContacts()


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    pending: int = 0
    case_ids: list[int] = field(default_factory=list)
    campaign_ids: list[int] = field(default_factory=list)
    rejected: list[RejectedAlert] = field(default_factory=list)


def ingest_alerts(
    *,
    session: Session,
    raw_alerts: Sequence[Mapping[str, Any]],
    actor: str,
    policy: IncidentPolicy = DEFAULT_POLICY,
    campaign_rules: Sequence[CampaignRule] = (),
    soc_contacts: SocContacts = NO_SOC_CONTACTS,
) -> IngestResult:
    """Ingest a posted batch: every alert validated on its own, the valid ones stored.

    An alert that is invalid (a missing field, a NUL character, a value past its bound) or names a
    tenant that is not registered is refused alone, with the reason, in ``result.rejected``; the rest
    of the batch is stored (see :func:`_ingest_once`). Transient lock errors are retried: the batch
    takes its locks in a global order, so deadlocks should not happen, and the retry is a safety net
    (PostgreSQL deadlock/serialization failures, SQLite "database is locked"). The stored part is
    all-or-nothing, so running it again is safe.
    """
    accepted, rejected = _screen(session=session, raw_alerts=raw_alerts)
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            result = _ingest_once(
                session=session, alerts=accepted, actor=actor, policy=policy, campaign_rules=campaign_rules,
                soc_contacts=soc_contacts,
            )
            result.rejected = rejected
            return result
        except (OperationalError, StaleDataError) as exc:
            # StaleDataError: on SQLite a case changed (a PATCH) between its read and the batch's write.
            session.rollback()
            if attempt == INGEST_ATTEMPTS or not _is_transient(exc):
                raise
            log.warning("alert batch retried", attempt=attempt, error=type(exc).__name__)
    raise AssertionError("unreachable")


def _screen(
    *, session: Session, raw_alerts: Sequence[Mapping[str, Any]]
) -> tuple[list[AlertIn], list[RejectedAlert]]:
    """The posted alerts that are valid and of registered tenants, and the others with the reason."""
    valid: list[tuple[int, AlertIn]] = []
    rejected: list[RejectedAlert] = []
    for index, raw in enumerate(raw_alerts):
        try:
            valid.append((index, AlertIn.model_validate(raw)))
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'alert'}: {error['msg']}" for error in exc.errors()
            )
            rejected.append(_rejected(index, raw.get("id"), _organization_id(raw), reasons))
    registered = known_tenants(session=session, tenant_ids={alert.tenant_id for _, alert in valid})
    accepted: list[AlertIn] = []
    for index, alert in valid:
        if alert.tenant_id in registered:
            accepted.append(alert)
        else:
            reason = UnregisteredTenantError(alert.tenant_id).message
            rejected.append(_rejected(index, alert.id, alert.tenant_id, reason))
    rejected.sort(key=lambda r: r.index)
    if rejected:
        log.warning("alerts rejected", rejected=len(rejected), first_reason=rejected[0].reason[:200])
    return accepted, rejected


def _rejected(index: int, alert_id: Any, tenant_id: Any, reason: str) -> RejectedAlert:
    return RejectedAlert(index=index, id=_readable(alert_id), tenant_id=_readable(tenant_id), reason=reason)


def _organization_id(raw: Mapping[str, Any]) -> Any:
    organization = raw.get("organization")
    return organization.get("id") if isinstance(organization, Mapping) else None


def _readable(value: Any) -> str | None:
    """An id to report back, if it is a short string fit to echo (never a NUL or a megabyte)."""
    if isinstance(value, str) and 0 < len(value) <= 128 and "\x00" not in value:
        return value
    return None


def _is_transient(exc: OperationalError | StaleDataError) -> bool:
    if isinstance(exc, StaleDataError):
        return True
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
    soc_contacts: SocContacts,
) -> IngestResult:
    """Store the alerts not seen before, place each in its tenant's incidents (``incidents.flows``)
    and link the cases that took them to city-wide campaigns (``campaigns.service``).

    One transaction for the whole batch (every tenant registered): a failure half-way stores
    nothing. Alerts already stored (same tenant and id) count as duplicates and change no case, so
    re-posting a batch is a no-op.

    Locks are taken in one global order ((tenant, alert id) ascending, tenants ascending, campaigns), so batches
    posted concurrently wait for each other instead of deadlocking.
    """
    result = IngestResult()
    new_by_tenant: dict[str, list[AlertIn]] = defaultdict(list)
    entities: list[dict[str, Any]] = []
    keyed = [(alert_in, derive_group_key(alert_in)) for alert_in in sorted(alerts, key=lambda a: (a.tenant_id, a.id))]
    stored_keys = insert_new_alerts(session=session, alerts=keyed)
    for alert_in, group_key in keyed:
        if (alert_in.tenant_id, alert_in.id) in stored_keys:
            stored_keys.discard((alert_in.tenant_id, alert_in.id))  # twice in one batch: the second is a duplicate
            result.created += 1
            entities += entity_rows(alert_in, group_key=group_key, policy=policy)
            new_by_tenant[alert_in.tenant_id].append(alert_in)
        else:
            result.duplicates += 1
    record_entities(session=session, rows=entities)
    # One query loads the new alerts into the session, so placing each needs no lookup of its own.
    new_keys = [(alert.tenant_id, alert.id) for members in new_by_tenant.values() for alert in members]
    stored: dict[tuple[str, str], Alert] = {}
    if new_keys:
        query = select(Alert).where(tuple_(Alert.tenant_id, Alert.id).in_(new_keys))
        stored = {(alert.tenant_id, alert.id): alert for alert in session.scalars(query)}

    case_ids: set[int] = set()
    placed: list[Alert] = []
    for tenant_id in sorted(new_by_tenant):
        lock_tenant(session=session, tenant_id=tenant_id)
        # Oldest first, so a new case takes its title from the alert that started it.
        for alert_in in sorted(new_by_tenant[tenant_id], key=lambda a: (a.timestamp, a.id)):
            alert = stored[(alert_in.tenant_id, alert_in.id)]
            if alert.case_id is None:  # else an earlier alert of this batch took it in
                placed += place_alert(session=session, alert=alert, alert_in=alert_in, policy=policy, actor=actor)
            if alert.case_id is None:
                result.pending += 1
            else:
                case_ids.add(alert.case_id)
    result.case_ids = sorted(case_ids)
    result.campaign_ids = sorted(link_campaigns(session=session, alerts=placed, rules=campaign_rules))
    # In the batch's transaction (the outbox pattern): a case is never stored without its notifications.
    notify_new_cases(session=session, cases=[session.get_one(Case, case_id) for case_id in result.case_ids],
                     soc=soc_contacts)
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
