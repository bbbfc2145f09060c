"""Open-queue indexes: the open cases in queue order (severity rank, first seen, id), for the city and per member.

Partial indexes on the expressions `case_api.cases.models.SEVERITY_RANK` and `CASE_IS_OPEN` state; the
queue query states the same expressions, so a page of the queue is read off the index instead of sorting
every open case (measured with bench/api.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's expressions as of this revision (a migration must not follow later edits).
_RANK = sa.text(
    "(CASE WHEN (severity = 'low') THEN 0 WHEN (severity = 'medium') THEN 1 WHEN (severity = 'high') THEN 2 "
    "WHEN (severity = 'critical') THEN 3 ELSE -1 END) DESC"
)
_OPEN = sa.text("status NOT IN ('closed', 'resolved')")


def upgrade() -> None:
    op.create_index("ix_cases_open_queue", "cases", [_RANK, "first_seen", "id"],
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index("ix_cases_open_queue_tenant", "cases", ["tenant_id", _RANK, "first_seen", "id"],
                    postgresql_where=_OPEN, sqlite_where=_OPEN)


def downgrade() -> None:
    op.drop_index("ix_cases_open_queue_tenant", table_name="cases")
    op.drop_index("ix_cases_open_queue", table_name="cases")
