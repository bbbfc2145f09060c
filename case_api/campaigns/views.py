"""Campaign endpoints: city roles see whole campaigns, a member's keys only their own part."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.roles import CASE_READERS
from case_api.bounds import DEFAULT_LIMIT, Limit, Offset
from case_api.campaigns.models import CampaignView
from case_api.campaigns.service import get_campaign, list_campaigns
from case_api.db import SessionDep

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.get("", response_model=list[CampaignView], dependencies=[Depends(require_roles(*CASE_READERS))])
def get_campaigns(
    session: SessionDep,
    scope: TenantScope,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[CampaignView]:
    """Most recently active first. City roles: indicator, tenants and cases of each campaign. A member's
    keys: only campaigns linking one of its cases, with its own cases and a count of the other members."""
    return list_campaigns(session=session, scope=scope, limit=limit, offset=offset)


@router.get("/{campaign_id}", response_model=CampaignView, dependencies=[Depends(require_roles(*CASE_READERS))])
def get_one_campaign(campaign_id: int, session: SessionDep, scope: TenantScope) -> CampaignView:
    return get_campaign(session=session, campaign_id=campaign_id, scope=scope)
