"""A case's change (``PATCH /cases/{id}``) on PostgreSQL in two round trips, its answer made from what it wrote.

The ORM's way (``service.update_case``, SQLite's and every other caller's) costs about 3 ms of Python a change:
the unit of work's flush of the case and its audit line, five round trips, then the detail read again after the
commit. Here the same change is made with statements compiled once, on the write engine's psycopg connection:

1. BEGIN and one locking read: the case (``FOR UPDATE``) with every column the detail shows, its tenant's
   criticality and contract, whether a campaign links it and whether the assignee may be assigned it;
2. the change worked out in Python by the ORM path's own :func:`~case_api.cases.service.apply_patch` on a copy
   of the row; then in one pipeline: the versioned UPDATE of the case with its audit lines (one statement), the
   detail's pages of alerts and audit lines (read inside the transaction, so its own lines are there), the audit
   chain's claim and entries (``audit.service.send_appends``) and COMMIT.

The answer is the changed row (``version`` one more) with those pages: the bytes the detail read after the commit
gives (``test_case_api_patch.py``). A case that a campaign links is answered by that read (its campaigns are
disclosed per caller by ``campaigns.service``). The row lock makes the versioned UPDATE certain to find the
version read; it stays versioned all the same, and its audit lines take the case's id from it, so an UPDATE that
found another version fails the whole transaction (the lines' ``case_id`` is not nullable) rather than write
lines for a change that was not made.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.engine import Dialect

from case_api.audit.service import pending_entry, send_appends
from case_api.cases.detail import ALERT_PAGE, DETAIL_ROW, EVENT_PAGE, detail_json
from case_api.cases.models import Case, CasePatch
from case_api.cases.queue import case_dict, with_tenant
from case_api.cases.service import (
    ASSIGNABLE,
    CHANGE_ATTEMPTS,
    OPEN_SIBLING,
    apply_patch,
    reopen_conflict,
)
from case_api.db import DriverStatements, utcnow
from case_api.errors import CaseApiError, ConflictError, InvalidRequestError, NotFoundError, PreconditionFailedError
from case_api.scope import scoped
from case_api.sla.service import parse_contract

#: The locking read: the detail's row and whether ``:assignee`` may be assigned the case (false for none).
_LOCK = with_tenant(select(Case).where(Case.id == bindparam("case_id")), *DETAIL_ROW,
                    ASSIGNABLE.label("assignee_known")).with_for_update(of=Case)
#: The columns a change may write (``apply_patch``'s), besides ``version``.
_WRITTEN = ("status", "resolution", "closed_at", "assignee", "severity", "acknowledged_at", "triaged_at",
            "resolved_at", "sla_paused_since", "sla_pauses", "acknowledge_due_at", "triage_due_at",
            "resolve_due_at", "sla_due_at", "updated_at")
#: The versioned UPDATE and the audit lines of the case it changed, in their order.
_CHANGE_SQL = f"""
WITH changed AS (
    UPDATE cases SET {", ".join(f"{name} = %({name})s" + ("::json" if name == "sla_pauses" else "")
                                for name in _WRITTEN)}, version = version + 1
    WHERE id = %(case_id)s AND version = %(version)s
    RETURNING id
)
INSERT INTO case_events (case_id, at, actor, action, detail)
SELECT (SELECT id FROM changed), %(updated_at)s, %(actor)s, line.action, line.detail::json
FROM unnest(%(actions)s::text[], %(details)s::text[]) WITH ORDINALITY AS line(action, detail, position)
ORDER BY line.position
"""
#: What the database refuses to store, said as the application's DataError handler says it.
_UNSTORABLE = "a value in the request cannot be stored (out of range, too long or a NUL character)"


_COMPILED = DriverStatements()


def _statement(dialect: Dialect, name: str, scope: frozenset[str] | None = None) -> tuple[str, dict[str, Any]]:
    if name == "lock":
        tenants = None if scope is None else sorted(scope)
        return _COMPILED.get(dialect, (name, scope), lambda: scoped(_LOCK, Case.tenant_id, scope=tenants),
                             ("case_id", "assignee"))
    if name == "alerts":
        return _COMPILED.get(dialect, name, lambda: ALERT_PAGE, ("case_id", "tenant_id", "limit", "offset"))
    if name == "events":
        return _COMPILED.get(dialect, name, lambda: EVENT_PAGE, ("case_id", "limit", "offset"))
    return _COMPILED.get(dialect, name, lambda: OPEN_SIBLING, ("tenant_id", "group_key", "case_id"))


def change_case(*, engine: Engine, case_id: int, scope: Collection[str] | None, patch: CasePatch, actor: str,
                if_match: int | None, pages: tuple[tuple[int, int], tuple[int, int]]) -> tuple[bytes, str] | None:
    """``update_case``'s change on PostgreSQL (``engine``: the write engine) and the case detail after it (pages of
    alerts and audit lines ``(limit, offset)``) with its ETag; ``None`` when the detail is to be read after the
    commit (a case a campaign links). Raises what ``update_case`` raises, for the same reasons."""
    tenants = None if scope is None else frozenset(scope)
    for attempt in range(CHANGE_ATTEMPTS):
        with engine.connect() as connection:
            answer = _attempt(connection, case_id=case_id, scope=tenants, patch=patch, actor=actor,
                              if_match=if_match, pages=pages, first=attempt == 0)
        if answer is not _AGAIN:
            return cast("tuple[bytes, str] | None", answer)
    raise ConflictError(f"case {case_id} is changing too often to apply this change now: try again")


#: An attempt that is to be made again: its connection was found dead, or the case changed while it was written.
_AGAIN = object()


def _attempt(connection: Connection, *, case_id: int, scope: frozenset[str] | None, patch: CasePatch, actor: str,
             if_match: int | None, pages: tuple[tuple[int, int], tuple[int, int]], first: bool) -> object:
    dialect = connection.dialect
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    assignee = patch.assignee if "assignee" in patch.model_fields_set else None
    lock_sql, lock_params = _statement(dialect, "lock", scope)
    row: Any  # a named tuple of _LOCK's columns
    try:
        row = driver.cursor(row_factory=namedtuple_row).execute(
            lock_sql, {**lock_params, "case_id": case_id, "assignee": assignee}).fetchone()
    except psycopg.OperationalError:
        # The pool hands its connections out unpinged: one found dead (the server restarted, say) is replaced and
        # the change made once more, as nothing was written.
        if not first or not driver.broken:
            raise
        connection.invalidate()
        return _AGAIN
    try:
        if row is None:
            raise NotFoundError(f"case {case_id} not found")
        if if_match is not None and row.version != if_match:
            raise PreconditionFailedError(
                f"case {case_id} is at version {row.version}, not {if_match}: read it again and redo the change")
        contract, default = parse_contract(row.contract)
        case = SimpleNamespace(**row._asdict())
        now = utcnow()
        changes = apply_patch(cast(Case, case), patch, now=now, assignee_known=bool(row.assignee_known),
                              contract=contract, ensure_reopenable=lambda: _ensure_reopenable(driver, dialect, row))
    except CaseApiError:
        driver.rollback()
        raise
    (alerts_limit, alerts_offset), (events_limit, events_offset) = pages
    alerts_sql, alerts_params = _statement(dialect, "alerts")
    events_sql, events_params = _statement(dialect, "events")
    try:
        with driver.pipeline():
            if changes:
                driver.execute(_CHANGE_SQL, {
                    **{name: getattr(case, name) for name in _WRITTEN}, "sla_pauses": json.dumps(case.sla_pauses),
                    "case_id": case_id, "version": row.version, "actor": actor,
                    "actions": [action.value for action, _ in changes],
                    "details": [json.dumps(detail) for _, detail in changes]})
            alert_rows = driver.cursor(row_factory=namedtuple_row).execute(alerts_sql, {
                **alerts_params, "case_id": case_id, "tenant_id": row.tenant_id, "limit": alerts_limit,
                "offset": alerts_offset})
            event_rows = driver.cursor(row_factory=namedtuple_row).execute(events_sql, {
                **events_params, "case_id": case_id, "limit": events_limit, "offset": events_offset})
            if changes:
                send_appends(driver, [pending_entry(
                    actor=actor, action=f"case.{action.value}", target_type="case", target_id=case_id,
                    tenant_id=row.tenant_id, detail=detail, at=now) for action, detail in changes])
            driver.commit()
    except psycopg.errors.NotNullViolation:  # the versioned UPDATE changed nothing: its lines have no case
        driver.rollback()
        if if_match is not None:
            raise PreconditionFailedError(
                f"case {case_id} changed while this change was written: read it again and redo the change") from None
        return _AGAIN
    except psycopg.IntegrityError as exc:
        driver.rollback()
        raise ConflictError(f"case {case_id} cannot be reopened: its group already has an open case") from exc
    except psycopg.DataError:
        driver.rollback()
        raise InvalidRequestError(_UNSTORABLE) from None
    if row.linked:
        return None
    changed: Any = row._replace(**{name: getattr(case, name) for name in _WRITTEN},
                           version=row.version + 1) if changes else row
    # The clocks as of the answer, as the read after the commit gives them (a pause runs from the change on).
    body = detail_json(case_dict(changed, (contract, default), row.asset_criticality or "medium", utcnow()),
                       alert_rows.fetchall(), event_rows.fetchall(), [])
    return body, f'"{changed.version}"'


def _ensure_reopenable(driver: psycopg.Connection[Any], dialect: Dialect, row: Any) -> None:
    sql, params = _statement(dialect, "sibling")
    other = driver.execute(sql, {**params, "tenant_id": row.tenant_id, "group_key": row.group_key,
                                 "case_id": row.id}).fetchone()
    if other is not None:
        raise reopen_conflict(row.id, other[0], row.group_key)

