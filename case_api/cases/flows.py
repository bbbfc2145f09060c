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
from case_api.cases.service import add_alert_to_case, open_case_for_group
from case_api.tenants.service import require_tenants

log = structlog.get_logger(__name__)

INGEST_ATTEMPTS = 3
# PostgreSQL: deadlock_detected, serialization_failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    case_ids: list[int] = field(default_factory=list)


def case_title(alert: AlertIn, group_key: str) -> str:
    return f"{alert.rule.title} ({group_key})"


def ingest_alerts(*, session: Session, alerts: Sequence[AlertIn], actor: str) -> IngestResult:
    """Ingest a batch (see :func:`_ingest_once`), retrying on transient lock errors.

    The batch takes its locks in a global order, so deadlocks should not happen; the retry is a
    safety net (PostgreSQL deadlock/serialization failures, SQLite "database is locked"). The
    batch is all-or-nothing, so running it again is safe.
    """
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            return _ingest_once(session=session, alerts=alerts, actor=actor)
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


def _ingest_once(*, session: Session, alerts: Sequence[AlertIn], actor: str) -> IngestResult:
    """Store the alerts not seen before and add each to the open case of its tenant and group.

    One transaction for the whole batch: an unknown tenant rejects it before anything is stored,
    and a failure half-way stores nothing. Alerts already stored (same id) count as duplicates and
    change no case, so re-posting a batch is a no-op. A group whose case is resolved or closed
    gets a new case.

    Locks are taken in one global order (alert ids ascending, then groups ascending), so batches
    posted concurrently wait for each other instead of deadlocking.
    """
    require_tenants(session=session, tenant_ids={alert.tenant_id for alert in alerts})
    result = IngestResult()
    new_by_group: dict[tuple[str, str], list[AlertIn]] = defaultdict(list)
    for alert_in in sorted(alerts, key=lambda a: a.id):
        group_key = derive_group_key(alert_in)
        if insert_alert_if_new(session=session, alert=alert_in, group_key=group_key):
            result.created += 1
            new_by_group[(alert_in.tenant_id, group_key)].append(alert_in)
        else:
            result.duplicates += 1

    for tenant_id, group_key in sorted(new_by_group):
        # Oldest first, so a new case takes its title from the alert that started it.
        members = sorted(new_by_group[(tenant_id, group_key)], key=lambda a: (a.timestamp, a.id))
        case = open_case_for_group(
            session=session,
            tenant_id=tenant_id,
            group_key=group_key,
            title=case_title(members[0], group_key),
            seen_at=members[0].timestamp,
            actor=actor,
        )
        for alert_in in members:
            alert = session.get_one(Alert, alert_in.id)
            add_alert_to_case(session=session, case=case, alert=alert, actor=actor)
        result.case_ids.append(case.id)
    session.commit()
    log.info(
        "alerts ingested",
        created=result.created,
        duplicates=result.duplicates,
        cases=result.case_ids,
    )
    return result
