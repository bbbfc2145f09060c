"""City-wide campaigns: one indicator seen at several member organisations, linking their cases."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.cases.models import Case
from case_api.db import Base, UTCDateTime, utcnow
from case_api.incidents.models import MAX_ENTITY_VALUE
from case_api.tenants.models import Tenant


class Campaign(Base):
    """One campaign rule's indicator seen at ``min_tenants`` or more tenants within its window."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_indicator", "indicator_field", "indicator_value", "rule_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    # the indicator's kind (`campaigns.indicators`); the column kept its first name, `indicator_field`
    indicator_kind: Mapped[str] = mapped_column("indicator_field", String(100))
    indicator_value: Mapped[str] = mapped_column(String(MAX_ENTITY_VALUE))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CampaignCase(Base):
    """A case linked to a campaign: the campaign's indicator is in one of the case's alerts."""

    __tablename__ = "campaign_cases"

    campaign_id: Mapped[int] = mapped_column(ForeignKey(Campaign.id), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), primary_key=True, index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Indicator(BaseModel):
    kind: str = Field(
        description="`ip`, `user_agent`, `domain`, `hash`, `user_principal`, `asn`, or `rule` (the same detection)"
    )
    value: str = Field(
        description="Normalised: a canonical address, a lower-case domain, hash or principal, an AS number"
    )


class CampaignOut(BaseModel):
    """A campaign as the city SOC sees it: every member organisation and case it links."""

    id: int
    rule_id: str
    title: str
    indicator: Indicator
    tenants: list[str] = Field(description="Member organisations (tenant ids) whose cases the campaign links")
    case_ids: list[int]
    first_seen: datetime
    last_seen: datetime


class CampaignNotice(BaseModel):
    """A campaign as a member organisation sees it: its own cases and a count of the others, nothing more."""

    id: int
    title: str
    indicator: Indicator = Field(description="The indicator, which the member's own alerts carry")
    case_ids: list[int] = Field(description="The member's own cases in the campaign")
    other_organisations: int = Field(description="How many other member organisations saw the same")
    summary: str


CampaignView = CampaignOut | CampaignNotice
