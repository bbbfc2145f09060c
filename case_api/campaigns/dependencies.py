"""The campaign rules the app was built with, as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from case_api.campaigns.rules import CampaignRule


def get_campaign_rules(request: Request) -> tuple[CampaignRule, ...]:
    rules: tuple[CampaignRule, ...] = request.app.state.campaign_rules
    return rules


CampaignRulesDep = Annotated[tuple[CampaignRule, ...], Depends(get_campaign_rules)]
