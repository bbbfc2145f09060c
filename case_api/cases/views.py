"""Case endpoints: the queue, one case with its alerts and audit trail, and triage changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlalchemy.orm import Session

from case_api.alerts.models import AlertOut
from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import CASE_READERS, CASE_WORKERS
from case_api.campaigns.models import CampaignView
from case_api.campaigns.service import case_campaigns
from case_api.cases.models import Case, CaseEventOut, CaseOut, CasePatch, CaseStatus
from case_api.cases.service import case_alerts, case_events, get_case, list_cases, update_case
from case_api.db import SessionDep

router = APIRouter(prefix="/cases", tags=["cases"])


class CaseDetailOut(CaseOut):
    alerts: list[AlertOut]
    events: list[CaseEventOut]
    campaigns: list[CampaignView] = Field(
        description="City-wide campaigns linking this case, as the caller may see them (campaigns/disclosure.py)"
    )


@router.get("", response_model=list[CaseOut], dependencies=[Depends(require_roles(*CASE_READERS))])
def get_cases(
    session: SessionDep,
    scope: TenantScope,
    tenant: str | None = None,
    status: CaseStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[CaseOut]:
    """The queue: most severe first, then most recently active."""
    cases = list_cases(session=session, scope=scope, tenant_id=tenant, status=status, limit=limit, offset=offset)
    return [CaseOut.model_validate(c) for c in cases]


@router.get(
    "/{case_id}",
    response_model=CaseDetailOut,
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_one_case(case_id: int, session: SessionDep, scope: TenantScope) -> CaseDetailOut:
    return _detail(session, get_case(session=session, case_id=case_id, scope=scope), scope)


@router.patch("/{case_id}", response_model=CaseDetailOut)
def patch_case(
    case_id: int,
    patch: CasePatch,
    session: SessionDep,
    scope: TenantScope,
    principal: Annotated[Principal, Depends(require_roles(*CASE_WORKERS))],
) -> CaseDetailOut:
    """Change status (see the case workflow) and/or assignee."""
    case = update_case(session=session, case_id=case_id, scope=scope, patch=patch, actor=principal.actor)
    return _detail(session, case, scope)


def _detail(session: Session, case: Case, scope: frozenset[str] | None) -> CaseDetailOut:
    alerts = [AlertOut.model_validate(a) for a in case_alerts(session=session, case=case)]
    events = [CaseEventOut.model_validate(e) for e in case_events(session=session, case=case)]
    return CaseDetailOut.model_validate(
        {
            **CaseOut.model_validate(case).model_dump(),
            "alerts": alerts,
            "events": events,
            "campaigns": case_campaigns(session=session, case_id=case.id, scope=scope),
        }
    )
