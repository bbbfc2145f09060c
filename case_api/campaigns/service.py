"""Campaign queries and linking. Linking reads every tenant's alerts; reads go through ``disclosure``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, Row, bindparam, func, select, text
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert
from case_api.campaigns.disclosure import disclose
from case_api.campaigns.indicators import INDICATOR_KINDS
from case_api.campaigns.models import Campaign, CampaignCase, CampaignView
from case_api.campaigns.rules import CampaignRule
from case_api.db import utcnow
from case_api.errors import NotFoundError
from case_api.incidents.models import AlertEntity

log = structlog.get_logger(__name__)

# PostgreSQL advisory lock taken by every campaign change, after the tenants' grouping locks.
_CAMPAIGN_LOCK = 0x43530002


def link_campaigns(*, session: Session, alerts: Sequence[Alert], rules: Sequence[CampaignRule]) -> set[int]:
    """Form or extend the campaigns the newly placed ``alerts`` take part in; the ids of those touched.

    For every indicator (kind and normalised value, ``campaigns.indicators``) of a kind a rule names
    and an alert carries, the cases of all tenants holding an alert with that indicator within the
    rule's window of it are counted; at the rule's ``min_tenants`` for the kind (distinct tenants)
    they are linked to the rule's campaign for the indicator (the one active within the window, else
    a new one, unless one campaign links all those cases already: the same rule firing where one
    address was already seen adds nothing). Values the rule ignores count for nothing. Only alerts
    that sit in a case count: a held alert has no case to link.
    """
    placed = [alert for alert in alerts if alert.case_id is not None]
    stored = {INDICATOR_KINDS[kind].stored_as: kind for rule in rules for kind in rule.indicators}
    if not placed or not stored:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CAMPAIGN_LOCK})
    # Alerts are keyed by (tenant, id): two tenants' alerts may share an id.
    by_key = {(alert.tenant_id, alert.id): alert for alert in placed}
    rows = session.execute(
        select(AlertEntity.tenant_id, AlertEntity.alert_id, AlertEntity.field, AlertEntity.value).where(
            AlertEntity.alert_id.in_(sorted({alert.id for alert in placed})), AlertEntity.field.in_(sorted(stored))
        )
    ).all()
    order = {rule.id: number for number, rule in enumerate(rules)}
    spans: dict[tuple[int, str, str], set[tuple[datetime, datetime]]] = defaultdict(set)
    for row in rows:
        alert = by_key.get((row.tenant_id, row.alert_id))
        if alert is None:  # another tenant's alert with the same id
            continue
        kind = stored[row.field]
        for rule in rules:
            counted = kind in rule.indicators and alert.rule_level in rule.counted_levels
            if counted and not rule.ignores(kind, row.value):
                spans[(order[rule.id], kind, row.value)].add((alert.timestamp, alert.last_seen))
    touched: set[int] = set()
    # In the rules' order, so a specific indicator (an address) links cases before a broad one (a rule).
    for (number, kind, value), alert_spans in sorted(spans.items()):
        touched |= _link_indicator(session=session, rule=rules[number], kind=kind, value=value, spans=alert_spans)
    return touched


# tenant, case, the alert's first and last event time
Sighting = Row[str, int | None, datetime, datetime]

_SIGHTINGS = (
    select(Alert.tenant_id, Alert.case_id, Alert.timestamp, Alert.last_seen)
    .join(AlertEntity, (AlertEntity.alert_id == Alert.id) & (AlertEntity.tenant_id == Alert.tenant_id))
    .where(
        AlertEntity.field == bindparam("field"),
        AlertEntity.value == bindparam("value"),
        AlertEntity.timestamp <= bindparam("high"),
        AlertEntity.last_seen >= bindparam("low"),
        Alert.case_id.is_not(None),
        Alert.rule_level.in_(bindparam("levels", expanding=True)),
    )
)


def _link_indicator(
    *, session: Session, rule: CampaignRule, kind: str, value: str, spans: set[tuple[datetime, datetime]]
) -> set[int]:
    """Link, for each new alert's span, the cases sighting the indicator within the window of it.

    One query reads every sighting near any of the spans; each span then picks its own from them.
    """
    low = min(start for start, _ in spans) - rule.window
    high = max(end for _, end in spans) + rule.window
    sightings = session.execute(
        _SIGHTINGS,
        {"field": INDICATOR_KINDS[kind].stored_as, "value": value, "low": low, "high": high,
         "levels": list(rule.counted_levels)},
    ).all()
    touched: set[int] = set()
    done: set[frozenset[int]] = set()
    for start, end in sorted(spans):
        near = [row for row in sightings if row.timestamp <= end + rule.window and row.last_seen >= start - rule.window]
        cases = frozenset(row.case_id for row in near if row.case_id is not None)
        if cases in done or len({row.tenant_id for row in near}) < rule.min_tenants_for(kind):
            continue
        done.add(cases)
        campaign = _link_cases(session=session, rule=rule, kind=kind, value=value, sightings=near,
                               low=start - rule.window, high=end + rule.window)
        if campaign is not None:
            touched.add(campaign.id)
    return touched


def _link_cases(
    *, session: Session, rule: CampaignRule, kind: str, value: str, sightings: Sequence[Sighting],
    low: datetime, high: datetime,
) -> Campaign | None:
    """Link the sighting cases to the rule's campaign for the indicator active within [low, high], or a new one."""
    first = min(row.timestamp for row in sightings)
    last = max(row.last_seen for row in sightings)
    campaign = session.scalars(
        select(Campaign)
        .where(
            Campaign.rule_id == rule.id,
            Campaign.indicator_kind == kind,
            Campaign.indicator_value == value,
            Campaign.last_seen >= low,
            Campaign.first_seen <= high,
        )
        .order_by(Campaign.last_seen.desc(), Campaign.id.desc())
        .limit(1)
    ).first()
    now = utcnow()
    if campaign is None:
        if _linked_together(session, {row.case_id for row in sightings}):
            return None
        campaign = Campaign(
            rule_id=rule.id, title=rule.title, indicator_kind=kind, indicator_value=value,
            first_seen=first, last_seen=last, created_at=now, updated_at=now,
        )
        session.add(campaign)
        session.flush()
        log.info("campaign formed", campaign=campaign.id, rule_id=rule.id, indicator=f"{kind}={value}")
    else:
        campaign.first_seen = min(campaign.first_seen, first)
        campaign.last_seen = max(campaign.last_seen, last)
        campaign.updated_at = now
    linked = set(session.scalars(select(CampaignCase.case_id).where(CampaignCase.campaign_id == campaign.id)))
    for tenant_id, case_id in sorted({(row.tenant_id, row.case_id) for row in sightings}):
        if case_id not in linked:
            session.add(CampaignCase(campaign_id=campaign.id, case_id=case_id, tenant_id=tenant_id, linked_at=now))
            linked.add(case_id)
    return campaign


def _linked_together(session: Session, case_ids: set[int]) -> bool:
    """Whether one campaign already links every one of ``case_ids``: a new campaign would tell nothing new."""
    query = (
        select(CampaignCase.campaign_id)
        .where(CampaignCase.case_id.in_(sorted(case_ids)))
        .group_by(CampaignCase.campaign_id)
        .having(func.count() == len(case_ids))
    )
    return session.scalars(query.limit(1)).first() is not None


def _with_links(session: Session, campaigns: Sequence[Campaign]) -> list[tuple[Campaign, list[CampaignCase]]]:
    links: dict[int, list[CampaignCase]] = defaultdict(list)
    if campaigns:
        query = select(CampaignCase).where(CampaignCase.campaign_id.in_([c.id for c in campaigns]))
        for link in session.scalars(query.order_by(CampaignCase.case_id)):
            links[link.campaign_id].append(link)
    return [(campaign, links[campaign.id]) for campaign in campaigns]


def _visible(scope: Collection[str] | None) -> list[ColumnElement[bool]]:
    """Conditions keeping the campaigns that link a case of the scope (all of them for city roles)."""
    if scope is None:
        return []
    own = select(CampaignCase.campaign_id).where(CampaignCase.tenant_id.in_(sorted(scope)))
    return [Campaign.id.in_(own)]


def list_campaigns(
    *, session: Session, scope: Collection[str] | None, limit: int = 100, offset: int = 0
) -> list[CampaignView]:
    """Campaigns the caller may see, most recently active first, each as :func:`disclose` lets it."""
    query = (
        select(Campaign)
        .where(*_visible(scope))
        .order_by(Campaign.last_seen.desc(), Campaign.id.desc())
        .limit(limit)
        .offset(offset)
    )
    views = (disclose(c, links, scope=scope) for c, links in _with_links(session, list(session.scalars(query))))
    return [view for view in views if view is not None]


def get_campaign(*, session: Session, campaign_id: int, scope: Collection[str] | None) -> CampaignView:
    """One campaign as the caller may see it; one it may not see is reported as not found."""
    campaign = session.get(Campaign, campaign_id)
    view = None
    if campaign is not None:
        [(campaign, links)] = _with_links(session, [campaign])
        view = disclose(campaign, links, scope=scope)
    if view is None:
        raise NotFoundError(f"campaign {campaign_id} not found")
    return view


#: The campaigns linking one case, built once (every case detail asks, and most cases have none).
_CASE_CAMPAIGNS = (select(Campaign).where(Campaign.id.in_(
    select(CampaignCase.campaign_id).where(CampaignCase.case_id == bindparam("case_id")))).order_by(Campaign.id))


def case_campaigns(*, session: Session, case_id: int, scope: Collection[str] | None) -> list[CampaignView]:
    """The campaigns linking case ``case_id`` (which the caller may see), as :func:`disclose` lets it."""
    campaigns = list(session.scalars(_CASE_CAMPAIGNS, {"case_id": case_id}))
    views = (disclose(c, links, scope=scope) for c, links in _with_links(session, campaigns))
    return [view for view in views if view is not None]


def campaigns_by_case(
    *, session: Session, case_ids: Collection[int], scope: Collection[str] | None
) -> dict[int, list[CampaignView]]:
    """For a page of cases, the campaigns linking each, as :func:`disclose` lets the caller see them (one
    query for the links, one for the campaigns: the console's queue shows them on every row)."""
    if not case_ids:
        return {}
    ids = select(CampaignCase.campaign_id).where(CampaignCase.case_id.in_(sorted(case_ids)))
    campaigns = list(session.scalars(select(Campaign).where(Campaign.id.in_(ids)).order_by(Campaign.id)))
    found: dict[int, list[CampaignView]] = defaultdict(list)
    for campaign, links in _with_links(session, campaigns):
        view = disclose(campaign, links, scope=scope)
        if view is None:
            continue
        for link in links:
            if link.case_id in case_ids:
                found[link.case_id].append(view)
    return dict(found)
