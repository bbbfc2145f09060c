"""Evidence: the raw events behind a case's alerts, read from the event store by the alerts' event ids.

The case's alerts say which events they matched (`event.ids`) and when (`@timestamp` .. `event.end`); the
evidence of a case is the list of those ids, distinct, in a stable order (alerts by event time, then id;
each alert's ids as it lists them). A page of that list is looked up in the event store within the case's
tenant and the listed alerts' time windows, so a page costs the days it touches, not the case's whole span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import pyarrow as pa
import structlog
from fastapi import Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert
from case_api.cases.models import Case
from case_api.errors import CaseApiError
from citysoc.store import EventStore

#: Events a page of evidence carries unless asked for fewer, and at most (an `event.original` can be large).
EVIDENCE_PAGE = 50
MAX_EVIDENCE_PAGE = 200
#: Slack around an alert's time bounds: the correlator writes alert times at millisecond precision.
TIME_SLACK = timedelta(seconds=1)

log = structlog.get_logger(__name__)


class EventStoreUnavailableError(CaseApiError):
    """The event store could not be read; the case and its alerts are still readable."""

    status_code = 503


class EvidenceItem(BaseModel):
    event_id: str
    alert_ids: list[str] = Field(description="The case's alerts that list this event")
    event: dict[str, Any] | None = Field(
        description="The stored ECS document with `event.original`; null when the event store does not hold "
        "this event for the case's tenant (past retention, or an id the tenant never sent)"
    )


class EvidencePage(BaseModel):
    case_id: int
    tenant_id: str
    total: int = Field(description="Distinct event ids the case's alerts list")
    offset: int
    limit: int
    items: list[EvidenceItem] = Field(description="Alerts by event time, then id; each alert's events in its order")


@dataclass
class EvidenceRef:
    """One event id a case's alerts list: which alerts, and the event-time windows they give it."""

    event_id: str
    alert_ids: list[str] = field(default_factory=list)
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)


def get_event_store(request: Request) -> EventStore:
    store: EventStore = request.app.state.event_store
    return store


EventStoreDep = Annotated[EventStore, Depends(get_event_store)]


def evidence_refs(*, session: Session, case: Case) -> list[EvidenceRef]:
    """Every event id the case's alerts list, distinct, in the evidence order."""
    rows = session.execute(
        select(Alert.id, Alert.timestamp, Alert.last_seen, Alert.event_ids)
        .where(Alert.tenant_id == case.tenant_id, Alert.case_id == case.id)
        .order_by(Alert.timestamp, Alert.id)
    )
    refs: dict[str, EvidenceRef] = {}
    for alert_id, first, last, event_ids in rows:
        window = (first - TIME_SLACK, max(first, last) + TIME_SLACK)
        for event_id in event_ids:
            ref = refs.get(event_id) or refs.setdefault(event_id, EvidenceRef(event_id))
            if alert_id not in ref.alert_ids:
                ref.alert_ids.append(alert_id)
                ref.windows.append(window)
    return list(refs.values())


def case_evidence(*, session: Session, case: Case, store: EventStore, limit: int, offset: int) -> EvidencePage:
    """One page of the case's evidence, the events read from `store` within the case's tenant only."""
    refs = evidence_refs(session=session, case=case)
    page = refs[offset:offset + limit]
    windows = sorted({window for ref in page for window in ref.windows})
    try:
        events = store.events_by_id(tenant=case.tenant_id, ids=[ref.event_id for ref in page], windows=windows)
    except (OSError, pa.ArrowException) as exc:
        log.error("event store unreadable", case_id=case.id, tenant=case.tenant_id, error_type=type(exc).__name__)
        raise EventStoreUnavailableError(
            "the event store cannot be read right now; the case and its alerts still can (try again later)"
        ) from None
    by_id = {event["event"]["id"]: event for event in events}
    return EvidencePage(
        case_id=case.id, tenant_id=case.tenant_id, total=len(refs), offset=offset, limit=limit,
        items=[EvidenceItem(event_id=ref.event_id, alert_ids=ref.alert_ids, event=by_id.get(ref.event_id))
               for ref in page],
    )
