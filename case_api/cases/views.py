"""Case endpoints: the queue, one case with its alerts and audit trail, and triage changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field
from starlette.datastructures import State

from case_api.alerts.models import AlertOut
from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import CASE_READERS, CASE_WORKERS
from case_api.bounds import DEFAULT_LIMIT, IdPath, Limit, Offset
from case_api.campaigns.models import CampaignView
from case_api.cases.detail import detail_body, detail_pipelined
from case_api.cases.evidence import EVIDENCE_PAGE, MAX_EVIDENCE_PAGE, EventStoreDep, EvidencePage, case_evidence
from case_api.cases.models import CaseEventOut, CaseOut, CasePatch, CaseStatus
from case_api.cases.patch import change_case
from case_api.cases.queue import queue_body
from case_api.cases.service import (
    case_alerts,
    case_events,
    get_case,
    update_case,
)
from case_api.cases.versions import IfMatch, parse_if_match
from case_api.db import SessionDep, read_retrying

router = APIRouter(prefix="/cases", tags=["cases"])


#: Alerts and audit lines a case detail carries unless asked for fewer; the rest is paged.
DETAIL_PAGE = 100


class CaseDetailOut(CaseOut):
    alerts: list[AlertOut] = Field(description="A page of the case's alerts, oldest first (see alerts_offset)")
    events: list[CaseEventOut] = Field(description="A page of the audit trail, oldest first (see events_offset)")
    campaigns: list[CampaignView] = Field(
        description="City-wide campaigns linking this case, as the caller may see them (campaigns/disclosure.py)"
    )


@router.get("", response_model=list[CaseOut],
            dependencies=[Depends(require_roles(*CASE_READERS))])
def get_cases(
    request: Request,
    session: SessionDep,
    scope: TenantScope,
    tenant: str | None = None,
    status: CaseStatus | None = None,
    open_only: Annotated[bool, Query(alias="open", description="Only cases not resolved or closed")] = False,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response:
    """The queue: the next SLA due time first, then most severe; cases with every clock stopped or paused last."""
    session.close()  # the key's, if it was read: closed on this thread, the page is read on the read engine
    body = read_queue(request.app.state, scope, tenant_id=tenant, status=status, open_only=open_only, limit=limit,
                      offset=offset)
    return Response(body, media_type="application/json")


def read_queue(state: State, scope: frozenset[str] | None, *, tenant_id: str | None, status: CaseStatus | None,
               open_only: bool, limit: int, offset: int) -> bytes:
    """``GET /cases``'s body: list[CaseOut] as serialised (cases/queue.py), built without a model per case, or the
    same bytes from the queue cache when the page's stamp holds; on the read engine. Also answered by
    cases/hot.py."""
    cache = state.queue_cache
    return read_retrying(state.read_session_factory, lambda session: queue_body(
        session=session, cache=cache, scope=scope, tenant_id=tenant_id, status=status, open_only=open_only,
        limit=limit, offset=offset))


@router.get(
    "/{case_id}",
    response_model=CaseDetailOut,
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_one_case(
    request: Request,
    case_id: IdPath,
    session: SessionDep,
    scope: TenantScope,
    alerts_limit: Limit = DETAIL_PAGE,
    alerts_offset: Offset = 0,
    events_limit: Limit = DETAIL_PAGE,
    events_offset: Offset = 0,
) -> Response:
    """The case with a page of its alerts and of its audit trail (``alert_count`` says how many alerts)."""
    session.close()  # the key's, if it was read: closed on this thread, the case is read on the read engine
    body, tag = read_detail(request.app.state, case_id, scope, alerts=(alerts_limit, alerts_offset),
                            events=(events_limit, events_offset))
    return Response(body, media_type="application/json", headers={"ETag": tag})


def read_detail(state: State, case_id: int, scope: frozenset[str] | None, *, alerts: tuple[int, int],
                events: tuple[int, int]) -> tuple[bytes, str]:
    """``GET /cases/{id}``'s body and ETag, on the read engine (also answered by cases/hot.py): on PostgreSQL in one
    round trip (``detail_pipelined``)."""
    engine = state.read_engine
    if engine.dialect.name == "postgresql":
        found = detail_pipelined(engine=engine, case_id=case_id, scope=scope, alerts=alerts, events=events)
        if found is not None:
            return found
    return read_retrying(state.read_session_factory, lambda session: detail_body(
        session=session, case_id=case_id, scope=scope, alerts=alerts, events=events))


@router.get(
    "/{case_id}/alerts",
    response_model=list[AlertOut],
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_case_alerts(
    case_id: IdPath, session: SessionDep, scope: TenantScope, limit: Limit = DETAIL_PAGE, offset: Offset = 0
) -> list[AlertOut]:
    """The case's alerts, oldest first, one page at a time."""
    case = get_case(session=session, case_id=case_id, scope=scope)
    return [AlertOut.model_validate(a) for a in case_alerts(session=session, case=case, limit=limit, offset=offset)]


@router.get(
    "/{case_id}/events",
    response_model=list[CaseEventOut],
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_case_events(
    case_id: IdPath, session: SessionDep, scope: TenantScope, limit: Limit = DETAIL_PAGE, offset: Offset = 0
) -> list[CaseEventOut]:
    """The case's audit trail, oldest first, one page at a time."""
    case = get_case(session=session, case_id=case_id, scope=scope)
    return [CaseEventOut.model_validate(e) for e in case_events(session=session, case=case, limit=limit, offset=offset)]


@router.get(
    "/{case_id}/evidence",
    response_model=EvidencePage,
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_case_evidence(
    case_id: IdPath,
    session: SessionDep,
    scope: TenantScope,
    store: EventStoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVIDENCE_PAGE)] = EVIDENCE_PAGE,
    offset: Offset = 0,
) -> EvidencePage:
    """The raw events (ECS with ``event.original``) behind the case's alerts, read from the event store within
    the case's tenant; alerts by event time, one page at a time (``total`` says how many)."""
    case = get_case(session=session, case_id=case_id, scope=scope)
    return case_evidence(session=session, case=case, store=store, limit=limit, offset=offset)


@router.patch("/{case_id}", response_model=CaseDetailOut)
def patch_case(
    request: Request,
    case_id: IdPath,
    patch: CasePatch,
    session: SessionDep,
    scope: TenantScope,
    principal: Annotated[Principal, Depends(require_roles(*CASE_WORKERS))],
    if_match: IfMatch = None,
) -> Response:
    """Change status (see the case workflow) and/or assignee.

    Send the case's ETag in ``If-Match`` so a change made by someone else since you read the case is
    refused (412) instead of overwritten; without it the change applies to the newest state.
    """
    session.close()  # the key's, if it was read: the change is made on the write engine
    body, tag = write_patch(request.app.state, case_id, scope, patch, actor=principal.actor,
                            if_match=parse_if_match(if_match))
    return Response(body, media_type="application/json", headers={"ETag": tag})


def write_patch(state: State, case_id: int, scope: frozenset[str] | None, patch: CasePatch, *, actor: str,
                if_match: int | None) -> tuple[bytes, str]:
    """``PATCH /cases/{id}``'s change, and its answer's body and ETag (also answered by cases/hot.py). On PostgreSQL
    the change and its answer in two round trips (cases/patch.py); elsewhere ``update_case`` and the detail read
    after the commit on the read engine."""
    pages = ((DETAIL_PAGE, 0), (DETAIL_PAGE, 0))
    engine = state.write_engine
    if engine.dialect.name == "postgresql":
        written = change_case(engine=engine, case_id=case_id, scope=scope, patch=patch, actor=actor,
                              if_match=if_match, pages=pages)
        if written is not None:
            return written
    else:
        with state.write_session_factory() as writes:
            update_case(session=writes, case_id=case_id, scope=scope, patch=patch, actor=actor, if_match=if_match)
    # committed: the answer is read on the read engine
    return read_detail(state, case_id, scope, alerts=pages[0], events=pages[1])
