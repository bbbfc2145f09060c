"""SLA clocks: members' contracts; on cases the times each clock stopped, the pauses while awaiting the member,
and the due times (the queue's order).

Existing cases take their stop times from their audit trail (the first assignment, status or severity change
acknowledges; the first status change out of `new` triages; becoming resolved or closed resolves) and their due
times from the default contract of this revision (24x7; no member had a contract and no case could be awaiting
the member before it), so the queue is ordered by due time at once.

The open-queue indexes of revision 0010 become indexes on the new queue order: the next due time first
(`sla_due_at IS NULL`, then `sla_due_at`), then severity rank, first seen and id.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("acknowledged_at", "triaged_at", "resolved_at", "sla_paused_since", "acknowledge_due_at", "triage_due_at",
          "resolve_due_at", "sla_due_at")
# The default contract when this revision was written (case_api/sla/models.py: DEFAULT_CONTRACT), in minutes.
_DEFAULT_TARGETS = {
    "critical": (15, 60, 4 * 60),
    "high": (60, 4 * 60, 24 * 60),
    "medium": (4 * 60, 24 * 60, 3 * 24 * 60),
    "low": (24 * 60, 3 * 24 * 60, 10 * 24 * 60),
}
# Frozen copies of the model's queue expressions as of this revision (case_api/cases/models.py: QUEUE_ORDER,
# CASE_IS_OPEN); revision 0010's for the downgrade.
_RANK = (
    "(CASE WHEN (severity = 'low') THEN 0 WHEN (severity = 'medium') THEN 1 WHEN (severity = 'high') THEN 2 "
    "WHEN (severity = 'critical') THEN 3 ELSE -1 END) DESC"
)
_OPEN = sa.text("status NOT IN ('closed', 'resolved')")
_QUEUE = [sa.text("(sla_due_at IS NULL)"), "sla_due_at", sa.text(_RANK), "first_seen", "id"]
_QUEUE_0010 = [sa.text(_RANK), "first_seen", "id"]
_ACKNOWLEDGING = ("assigned", "status_changed", "severity_changed", "merged", "merged_into")


def upgrade() -> None:
    op.create_table(
        "tenant_contracts",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("contract", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_contracts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_contracts")),
    )
    # Plain ADD COLUMNs: a batch copy of `cases` would trip the foreign keys held on it (SQLite).
    for name in _TIMES:
        op.add_column("cases", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("sla_pauses", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    _backfill(op.get_bind())
    _queue_indexes(_QUEUE)


def _queue_indexes(order: list[Any]) -> None:
    op.drop_index("ix_cases_open_queue_tenant", table_name="cases")
    op.drop_index("ix_cases_open_queue", table_name="cases")
    op.create_index("ix_cases_open_queue", "cases", order, postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index("ix_cases_open_queue_tenant", "cases", ["tenant_id", *order],
                    postgresql_where=_OPEN, sqlite_where=_OPEN)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _backfill(connection: sa.Connection) -> None:
    cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("status", sa.String),
                     sa.column("severity", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("closed_at", sa.DateTime(timezone=True)),
                     *(sa.column(name, sa.DateTime(timezone=True)) for name in _TIMES))
    events = sa.table("case_events", sa.column("case_id", sa.Integer), sa.column("id", sa.Integer),
                      sa.column("at", sa.DateTime(timezone=True)), sa.column("action", sa.String),
                      sa.column("detail", sa.JSON))
    stops: dict[int, dict[str, datetime | None]] = {}
    trail = connection.execute(
        sa.select(events.c.case_id, events.c.at, events.c.action, events.c.detail)
        .where(events.c.action.in_(_ACKNOWLEDGING)).order_by(events.c.case_id, events.c.id)
    )
    for case_id, when, action, detail in trail:
        at = _aware(when)
        assert at is not None
        found = stops.setdefault(case_id, {})
        found.setdefault("acknowledged_at", at)
        if action == "status_changed":
            detail = detail or {}
            if detail.get("from") == "new":
                found.setdefault("triaged_at", at)
            if detail.get("to") in ("resolved", "closed") and detail.get("from") not in ("resolved", "closed"):
                found["resolved_at"] = at
            elif detail.get("to") not in ("resolved", "closed"):
                found.pop("resolved_at", None)
    rows = connection.execute(sa.select(cases.c.id, cases.c.status, cases.c.severity, cases.c.created_at,
                                        cases.c.closed_at)).all()
    updates = []
    for case_id, status, severity, created_at, closed_at in rows:
        found = stops.get(case_id, {})
        created = _aware(created_at)
        assert created is not None
        stopped = {
            "acknowledged_at": found.get("acknowledged_at"),
            "triaged_at": found.get("triaged_at"),
            "resolved_at": found.get("resolved_at") or (_aware(closed_at) if status == "closed" else None),
        }
        if status in ("resolved", "closed"):
            stopped["resolved_at"] = stopped["resolved_at"] or created
        targets = _DEFAULT_TARGETS.get(severity, _DEFAULT_TARGETS["low"])
        due = {name: created + timedelta(minutes=minutes)
               for name, minutes in zip(("acknowledge_due_at", "triage_due_at", "resolve_due_at"), targets,
                                        strict=True)}
        running = [due[f"{clock}_due_at"] for clock, stop in zip(("acknowledge", "triage", "resolve"),
                                                                  stopped.values(), strict=True) if stop is None]
        updates.append({"b_id": case_id, **{f"b_{k}": v for k, v in stopped.items()},
                        **{f"b_{k}": v for k, v in due.items()}, "b_sla_due_at": min(running, default=None)})
    if updates:
        columns = ("acknowledged_at", "triaged_at", "resolved_at", "acknowledge_due_at", "triage_due_at",
                   "resolve_due_at", "sla_due_at")
        statement = cases.update().where(cases.c.id == sa.bindparam("b_id")).values(
            {name: sa.bindparam(f"b_{name}", type_=sa.DateTime(timezone=True)) for name in columns}
        )
        connection.execute(statement, updates)


def downgrade() -> None:
    _queue_indexes(_QUEUE_0010)
    # ALTER TABLE DROP COLUMN (SQLite 3.35+) rather than a batch copy, for the foreign keys held on cases.
    for name in (*_TIMES, "sla_pauses"):
        op.drop_column("cases", name)
    op.drop_table("tenant_contracts")
