"""Users own API keys (with expiry and last use); the deployment's hash-chained audit log.

Every existing key becomes owned by a user created from its name: the name as the user id when it is a
valid one (so the actors already written in the case and source trails, which were key names, name
that user), else the name with each other character replaced by '-'. Keys of one name but different
roles or tenants get one user each, the later ones suffixed with their key id. The role and tenant move
from the key to its user. The audit log starts empty: changes before the upgrade stay in the case and
source trails, unchained.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


def _user_id(name: str) -> str:
    if _USER_ID.match(name):
        return name
    text = re.sub(r"[^A-Za-z0-9._@+-]", "-", name).lstrip("._@+-")[:100]
    return text or "user"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_users_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(200), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_log_tenant_id"), "audit_log", ["tenant_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )

    op.add_column("api_keys", sa.Column("user_id", sa.String(100), nullable=True))
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))

    connection = op.get_bind()
    keys = connection.execute(sa.text("SELECT id, name, role, tenant_id, created_at FROM api_keys ORDER BY id")).all()
    owners: dict[str, tuple[str, str | None]] = {}
    now = datetime.now(UTC)
    for key_id, name, role, tenant_id, created_at in keys:
        user_id = _user_id(name)
        if user_id in owners and owners[user_id] != (role, tenant_id):
            user_id = f"{user_id[:90]}-{key_id}"
        if user_id not in owners:
            owners[user_id] = (role, tenant_id)
            connection.execute(
                sa.text("INSERT INTO users (id, display_name, role, tenant_id, created_at) "
                        "VALUES (:id, :display_name, :role, :tenant_id, :created_at)"),
                {"id": user_id, "display_name": name[:200], "role": role, "tenant_id": tenant_id,
                 "created_at": created_at or now},
            )
        connection.execute(sa.text("UPDATE api_keys SET user_id = :user_id WHERE id = :id"),
                           {"user_id": user_id, "id": key_id})

    with op.batch_alter_table("api_keys", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("user_id", existing_type=sa.String(100), nullable=False)
        batch.create_foreign_key(op.f("fk_api_keys_user_id_users"), "users", ["user_id"], ["id"])
        batch.create_index(op.f("ix_api_keys_user_id"), ["user_id"])
        batch.drop_constraint("fk_api_keys_tenant_id_tenants", type_="foreignkey")
        batch.drop_column("role")
        batch.drop_column("tenant_id")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(32), nullable=True))
        batch.add_column(sa.Column("tenant_id", sa.String(63), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.text(
        "UPDATE api_keys SET role = (SELECT role FROM users WHERE users.id = api_keys.user_id), "
        "tenant_id = (SELECT tenant_id FROM users WHERE users.id = api_keys.user_id), "
        "name = user_id"
    ))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("role", existing_type=sa.String(32), nullable=False)
        batch.create_foreign_key("fk_api_keys_tenant_id_tenants", "tenants", ["tenant_id"], ["id"])
        batch.drop_constraint("fk_api_keys_user_id_users", type_="foreignkey")
        batch.drop_index("ix_api_keys_user_id")
        batch.drop_column("user_id")
        batch.drop_column("expires_at")
        batch.drop_column("last_used_at")
    op.drop_table("audit_head")
    op.drop_index(op.f("ix_audit_log_tenant_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("users")
