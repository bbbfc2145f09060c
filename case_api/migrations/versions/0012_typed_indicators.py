"""Campaigns match typed indicators: existing campaigns name their indicator's kind instead of a field,
and existing alerts get their ``indicator:<kind>`` entity rows (normalised values), so alerts placed
after the upgrade link with sightings from before it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from case_api.campaigns.indicators import INDICATOR_KINDS, RULE_KIND, alert_indicators

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000
_entities = sa.table(
    "alert_entities",
    sa.column("id", sa.Integer), sa.column("alert_id", sa.String), sa.column("tenant_id", sa.String),
    sa.column("field", sa.String), sa.column("value", sa.String), sa.column("grouping", sa.Boolean),
    sa.column("risk", sa.Integer), sa.column("timestamp", sa.DateTime(timezone=True)),
    sa.column("last_seen", sa.DateTime(timezone=True)),
)
_campaigns = sa.table("campaigns", sa.column("indicator_field", sa.String))


def _field_kinds() -> dict[str, str]:
    kinds = {name: kind.name for kind in INDICATOR_KINDS.values() for name in kind.fields}
    return kinds | {"rule.id": RULE_KIND}


def upgrade() -> None:
    connection = op.get_bind()
    for field, kind in _field_kinds().items():
        connection.execute(
            _campaigns.update().where(_campaigns.c.indicator_field == field).values(indicator_field=kind)
        )
    fields = sorted(name for kind in INDICATOR_KINDS.values() for name in kind.fields)
    last = 0
    while True:
        rows = connection.execute(
            sa.select(_entities.c.id, _entities.c.alert_id, _entities.c.tenant_id, _entities.c.field,
                      _entities.c.value, _entities.c.timestamp, _entities.c.last_seen)
            .where(_entities.c.id > last, _entities.c.field.in_(fields))
            .order_by(_entities.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        added = {
            (row.tenant_id, row.alert_id, stored, value): row
            for row in rows
            for stored, value in alert_indicators({row.field: [row.value]})
        }
        present = _present(connection, {(tenant, alert) for tenant, alert, _, _ in added})
        new = [
            {"alert_id": alert, "tenant_id": tenant, "field": stored, "value": value, "grouping": False, "risk": 0,
             "timestamp": row.timestamp, "last_seen": row.last_seen}
            for (tenant, alert, stored, value), row in added.items()
            if (tenant, alert, stored, value) not in present
        ]
        if new:
            connection.execute(sa.insert(_entities), new)


def _present(connection: sa.Connection, alerts: set[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
    """Indicator rows the alerts have already (one alert's entities may span two batches)."""
    if not alerts:
        return set()
    rows = connection.execute(
        sa.select(_entities.c.tenant_id, _entities.c.alert_id, _entities.c.field, _entities.c.value).where(
            _entities.c.alert_id.in_(sorted({alert for _, alert in alerts})), _entities.c.field.like("indicator:%")
        )
    ).all()
    return {(row.tenant_id, row.alert_id, row.field, row.value) for row in rows}


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(_entities.delete().where(_entities.c.field.like("indicator:%")))
    first_field = {kind.name: kind.fields[0] for kind in INDICATOR_KINDS.values() if kind.fields}
    for kind, field in (first_field | {RULE_KIND: "rule.id"}).items():
        connection.execute(
            _campaigns.update().where(_campaigns.c.indicator_field == kind).values(indicator_field=field)
        )
