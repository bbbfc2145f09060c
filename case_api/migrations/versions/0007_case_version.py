"""Cases carry a version for optimistic concurrency (ETag / If-Match); existing cases start at 1.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: a batch copy of `cases` would trip the foreign keys that
    # alerts and audit lines hold on it (SQLite runs with foreign keys on).
    op.add_column("cases", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    op.drop_column("cases", "version")  # SQLite 3.35+: no batch copy of a table others refer to
