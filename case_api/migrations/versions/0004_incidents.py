"""Incidents: each alert's entities (with risk), the time of an alert's last event, several open cases per group.

Existing alerts get ``last_seen`` = ``timestamp`` and their entities, with the default policy's
incident entities (``user.name``, ``source.ip`` and the group key) and risk by level.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_CASE = sa.text("status NOT IN ('resolved', 'closed')")
_RISK = {"informational": 10, "low": 25, "medium": 50, "high": 75, "critical": 100}
_GROUPING_FIELDS = ("user.name", "source.ip")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE alerts SET last_seen = timestamp")
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("last_seen", existing_type=sa.DateTime(timezone=True), nullable=False)

    op.drop_index("uq_cases_open_group", table_name="cases")
    op.create_index("ix_cases_tenant_group", "cases", ["tenant_id", "group_key"])

    entities = op.create_table(
        "alert_entities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.Column("grouping", sa.Boolean(), nullable=False),
        sa.Column("risk", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_entities_alert_id_alerts")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_alert_entities_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_entities")),
    )
    op.create_index(op.f("ix_alert_entities_alert_id"), "alert_entities", ["alert_id"])
    op.create_index(
        "ix_alert_entities_tenant_entity", "alert_entities", ["tenant_id", "field", "value", "timestamp"]
    )
    op.create_index("ix_alert_entities_entity", "alert_entities", ["field", "value", "timestamp"])
    _backfill_entities(entities)


def _backfill_entities(entities: sa.Table) -> None:
    alerts = sa.table(
        "alerts",
        sa.column("id", sa.String()),
        sa.column("tenant_id", sa.String()),
        sa.column("rule_id", sa.String()),
        sa.column("rule_level", sa.String()),
        sa.column("timestamp", sa.DateTime(timezone=True)),
        sa.column("entities", sa.JSON()),
        sa.column("group_key", sa.String()),
    )
    connection = op.get_bind()
    rows: list[dict[str, Any]] = []
    for alert in connection.execute(sa.select(alerts)).mappings():
        named = {(f, str(v)) for f, values in (alert["entities"] or {}).items() for v in values if v}
        grouping = {(f, v) for f, v in named if f in _GROUPING_FIELDS}
        if not any(alert["group_key"] == f"{f}={v}" for f, v in grouping):
            grouping.add(("group_key", alert["group_key"]))
        others = (named | {("rule.id", alert["rule_id"])}) - grouping
        risk = _RISK.get(alert["rule_level"], 50)
        chosen = [*((e, True) for e in sorted(grouping)), *((e, False) for e in sorted(others))]
        for (field, value), is_grouping in chosen:
            if len(value) <= 1024 and len(field) <= 100:
                rows.append({
                    "alert_id": alert["id"], "tenant_id": alert["tenant_id"], "field": field, "value": value,
                    "grouping": is_grouping, "risk": risk if is_grouping else 0,
                    "timestamp": alert["timestamp"], "last_seen": alert["timestamp"],
                })
    if rows:
        op.bulk_insert(entities, rows)


def downgrade() -> None:
    op.drop_index("ix_alert_entities_entity", table_name="alert_entities")
    op.drop_index("ix_alert_entities_tenant_entity", table_name="alert_entities")
    op.drop_index(op.f("ix_alert_entities_alert_id"), table_name="alert_entities")
    op.drop_table("alert_entities")
    op.drop_index("ix_cases_tenant_group", table_name="cases")
    # Several open cases of one group may exist by now; the unique index needs them closed but one.
    op.execute(
        "UPDATE cases SET status = 'closed' WHERE status NOT IN ('resolved', 'closed') AND id NOT IN "
        "(SELECT MAX(id) FROM cases WHERE status NOT IN ('resolved', 'closed') GROUP BY tenant_id, group_key)"
    )
    op.create_index(
        "uq_cases_open_group",
        "cases",
        ["tenant_id", "group_key"],
        unique=True,
        postgresql_where=OPEN_CASE,
        sqlite_where=OPEN_CASE,
    )
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("last_seen")
