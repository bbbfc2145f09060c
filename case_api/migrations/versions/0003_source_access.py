"""Source access: how each source's senders are recognised (parser, networks, cloud accounts, token digest,
client-certificate fingerprint), source ids never reused, and the sources' audit trail.

Existing sources keep working: each gets its kind as parser (the collectors' own names; `cloudtrail` was an
alias of `aws.cloudtrail`) and no networks, accounts or credentials, i.e. it stays a file-fed source.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADDED = ("parser", "networks", "cloud_accounts", "token_sha256", "certificate_sha256")


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("parser", sa.String(64), nullable=True))
        batch.add_column(sa.Column("networks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cloud_accounts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("token_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("certificate_sha256", sa.String(64), nullable=True))

    sources = sa.table("sources", sa.column("kind", sa.String()), sa.column("parser", sa.String()),
                       sa.column("networks", sa.JSON()), sa.column("cloud_accounts", sa.JSON()))
    op.execute(sources.update().values(
        parser=sa.case((sources.c.kind == "cloudtrail", "aws.cloudtrail"), else_=sources.c.kind),
        networks=[], cloud_accounts=[]))

    # SQLite: the table is rebuilt (batch mode), which is also how it gets AUTOINCREMENT.
    with op.batch_alter_table("sources", recreate="auto", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("parser", existing_type=sa.String(64), nullable=False)
        batch.alter_column("networks", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("cloud_accounts", existing_type=sa.JSON(), nullable=False)
        batch.create_unique_constraint(op.f("uq_sources_token_sha256"), ["token_sha256"])
        batch.create_unique_constraint(op.f("uq_sources_certificate_sha256"), ["certificate_sha256"])

    op.create_table(
        "source_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_key_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_source_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_events")),
    )
    op.create_index("ix_source_events_tenant_source", "source_events", ["tenant_id", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_source_events_tenant_source", table_name="source_events")
    op.drop_table("source_events")
    with op.batch_alter_table("sources", table_kwargs={"sqlite_autoincrement": False}) as batch:
        batch.drop_constraint(op.f("uq_sources_certificate_sha256"), type_="unique")
        batch.drop_constraint(op.f("uq_sources_token_sha256"), type_="unique")
        for column in reversed(_ADDED):
            batch.drop_column(column)
