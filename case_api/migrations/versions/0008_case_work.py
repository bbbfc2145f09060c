"""Case work: resolution, merge target, ATT&CK techniques and close time on cases; asset criticality on
tenants; comments, tasks and observables.

Existing cases keep no resolution (closed ones were closed before it was asked) and no techniques until
their next alert; tenants start at medium criticality.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CASE_COLUMNS = ("resolution", "merged_into_id", "techniques", "closed_at")


def upgrade() -> None:
    # Plain ADD COLUMNs: a batch copy of `cases` would trip the foreign keys held on it (SQLite).
    op.add_column("cases", sa.Column("resolution", sa.String(32), nullable=True))
    op.add_column("cases", sa.Column("merged_into_id", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("techniques", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    op.add_column("cases", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("asset_criticality", sa.String(16), server_default="medium", nullable=False))

    op.create_table(
        "case_comments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_comments_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_comments")),
    )
    op.create_index(op.f("ix_case_comments_case_id"), "case_comments", ["case_id"])
    op.create_table(
        "case_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("playbook_id", sa.String(200), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_tasks_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_tasks")),
        sa.UniqueConstraint("case_id", "playbook_id", "step_id", name="uq_case_tasks_step"),
    )
    op.create_index(op.f("ix_case_tasks_case_id"), "case_tasks", ["case_id"])
    op.create_table(
        "case_observables",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.Column("tlp", sa.String(16), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_observables_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_observables")),
        sa.UniqueConstraint("case_id", "kind", "value", name="uq_case_observables_value"),
    )
    op.create_index(op.f("ix_case_observables_case_id"), "case_observables", ["case_id"])
    op.create_index("ix_case_observables_lookup", "case_observables", ["tenant_id", "kind", "value"])


def downgrade() -> None:
    op.drop_table("case_observables")
    op.drop_table("case_tasks")
    op.drop_table("case_comments")
    # ALTER TABLE DROP COLUMN (SQLite 3.35+) rather than a batch copy, for the foreign keys held on both.
    op.drop_column("tenants", "asset_criticality")
    for column in _CASE_COLUMNS:
        op.drop_column("cases", column)
