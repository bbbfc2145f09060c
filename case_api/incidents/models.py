"""Incidents: the entities each alert names, the policy that groups alerts into cases, entity risk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.alerts.models import Alert
from case_api.db import Base, UTCDateTime
from case_api.tenants.models import Tenant

#: Risk an alert adds to each of its incident entities, by Sigma level (Splunk ES RBA's risk score).
RISK_BY_LEVEL: Mapping[str, int] = MappingProxyType(
    {"informational": 10, "low": 25, "medium": 50, "high": 75, "critical": 100}
)
#: Longest entity value kept; longer values (a pasted payload, not an indicator) are not matched on.
MAX_ENTITY_VALUE = 1024
#: At most this many entity values are kept per alert (a correlation may name hundreds of users).
MAX_ENTITIES_PER_ALERT = 200
#: Pseudo-fields stored beside the real entities: the alert's group key and its rule.
GROUP_KEY_FIELD = "group_key"
RULE_FIELD = "rule.id"


class AlertEntity(Base):
    """One (field, value) an alert names, with the alert's times and risk: what grouping and campaigns match on.

    ``grouping`` marks the alert's incident entities (the fields its rule groups by, and its group
    key): only those join alerts into one case and accumulate risk. The other entities (and the
    ``rule.id`` pseudo-field) are kept for campaigns, which match indicators across tenants.
    """

    __tablename__ = "alert_entities"
    __table_args__ = (
        Index("ix_alert_entities_tenant_entity", "tenant_id", "field", "value", "timestamp"),
        Index("ix_alert_entities_entity", "field", "value", "timestamp"),
        # Alerts are keyed by (tenant, id): an entity row names its alert the same way.
        ForeignKeyConstraint(
            ["tenant_id", "alert_id"], [Alert.tenant_id, Alert.id], name="fk_alert_entities_alert_id_alerts"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(128), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id))
    field: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(String(MAX_ENTITY_VALUE))
    grouping: Mapped[bool] = mapped_column(Boolean)
    risk: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class IncidentPolicy:
    """How a tenant's alerts become cases (defaults from the case API's settings).

    - ``group_by``: entity fields whose shared values put alerts in one case, unless the alert's rule
      names its own (``citysoc: {group_by: [...]}``); the alert's group key always counts.
    - ``window``: how far apart in event time two alerts of one case may be, unless the rule says
      (``citysoc: {window: 2h}``). It also bounds entity risk.
    - ``risk_threshold``: an alert in no open case opens one when one of its incident entities has
      gathered at least this much risk within a window; below it the alert is held as risk only.
    """

    group_by: tuple[str, ...] = ("user.name", "source.ip")
    window: timedelta = timedelta(hours=24)
    risk_threshold: int = 50
    risk_by_level: Mapping[str, int] = field(default_factory=lambda: RISK_BY_LEVEL)

    def risk_of(self, level: str) -> int:
        return self.risk_by_level.get(level, self.risk_by_level["medium"])
