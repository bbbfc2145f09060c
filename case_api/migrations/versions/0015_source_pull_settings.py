"""Sources pulled from a provider's API (aws-s3, azure-eventhub, m365, gcp-pubsub, okta, github) keep their pull
settings: where to pull from, and references to the credentials (`env:NAME`, `file:/path`), never the secrets.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("pull", sa.JSON(), nullable=True))  # none: not a pulled source


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("pull")
