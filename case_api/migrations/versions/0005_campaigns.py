"""City-wide campaigns and the cases they link.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("indicator_field", sa.String(100), nullable=False),
        sa.Column("indicator_value", sa.String(1024), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_indicator", "campaigns", ["indicator_field", "indicator_value", "rule_id"])
    op.create_table(
        "campaign_cases",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_cases_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_campaign_cases_case_id_cases")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_campaign_cases_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("campaign_id", "case_id", name=op.f("pk_campaign_cases")),
    )
    op.create_index(op.f("ix_campaign_cases_case_id"), "campaign_cases", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_campaign_cases_case_id"), table_name="campaign_cases")
    op.drop_table("campaign_cases")
    op.drop_index("ix_campaigns_indicator", table_name="campaigns")
    op.drop_table("campaigns")
