"""Alerts keyed by (tenant, id): two tenants' alerts that share an id are both stored.

An alert's entities refer to it by (tenant, alert id) as well, so no join can cross tenants.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENTITY_FK = "fk_alert_entities_alert_id_alerts"


def upgrade() -> None:
    with op.batch_alter_table("alert_entities") as batch:
        batch.drop_constraint(_ENTITY_FK, type_="foreignkey")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["tenant_id", "id"])
    with op.batch_alter_table("alert_entities") as batch:
        batch.create_foreign_key(_ENTITY_FK, "alerts", ["tenant_id", "alert_id"], ["tenant_id", "id"])


def downgrade() -> None:
    # Refused while two tenants hold the same alert id: the old key cannot hold both.
    with op.batch_alter_table("alert_entities") as batch:
        batch.drop_constraint(_ENTITY_FK, type_="foreignkey")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["id"])
    with op.batch_alter_table("alert_entities") as batch:
        batch.create_foreign_key(_ENTITY_FK, "alerts", ["alert_id"], ["id"])
