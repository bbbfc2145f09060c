"""Where crossing tenants is decided: what of a campaign a caller may see, field by field.

A campaign joins cases of several member organisations. This module is the only code that turns
one into something a caller reads; every endpoint showing a campaign (``/campaigns``,
``/campaigns/{id}``, the ``campaigns`` of ``/cases/{id}``) goes through :func:`disclose`.

| field               | city roles (scope: every tenant) | a member's keys (scope: own tenant)        |
|---------------------|----------------------------------|--------------------------------------------|
| id, title           | yes                              | yes (the campaign rule's, not tenant data) |
| indicator (kind, value) | yes                          | yes: it is in the member's own alerts      |
| rule_id             | yes                              | no                                         |
| tenants             | every member's id                | no names                                   |
| case_ids            | every case                       | only its own cases                         |
| other organisations | (the tenants list)               | a count K: "also seen at K other ..."      |
| first/last seen     | over every member                | no (would date other members' sightings)   |
| per-tenant counts, alerts, entities, events | never in a campaign: each case's own detail, scoped |
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from case_api.campaigns.models import Campaign, CampaignCase, CampaignNotice, CampaignOut, CampaignView, Indicator


def disclose(
    campaign: Campaign, links: Sequence[CampaignCase], *, scope: Collection[str] | None
) -> CampaignView | None:
    """``campaign`` as the caller with tenant ``scope`` may see it; ``None`` when it may not see it at all.

    ``scope=None`` (city roles) sees the whole campaign. A tenant scope sees it only when one of
    its own cases is linked, and then only its own cases and the number of other organisations.
    """
    indicator = Indicator(kind=campaign.indicator_kind, value=campaign.indicator_value)
    tenants = sorted({link.tenant_id for link in links})
    if scope is None:
        return CampaignOut(
            id=campaign.id,
            rule_id=campaign.rule_id,
            title=campaign.title,
            indicator=indicator,
            tenants=tenants,
            case_ids=sorted(link.case_id for link in links),
            first_seen=campaign.first_seen,
            last_seen=campaign.last_seen,
        )
    own = [link for link in links if link.tenant_id in scope]
    if not own:
        return None
    others = sum(1 for tenant in tenants if tenant not in scope)
    return CampaignNotice(
        id=campaign.id,
        title=campaign.title,
        indicator=indicator,
        case_ids=sorted(link.case_id for link in own),
        other_organisations=others,
        summary=f"also seen at {others} other member organisation{'' if others == 1 else 's'}",
    )
