"""The case detail (``GET /cases/{id}`` and a ``PATCH``'s answer) read with plain statements built once, as the
bytes ``CaseDetailOut`` serialises by alias.

Three statements: the case with its tenant's asset criticality and contract and whether a campaign links it (one
row, the queue page's columns: cases/queue.py turns it into ``CaseOut``'s dict and its clocks), a page of its
alerts, a page of its audit lines; and, for a case a campaign links, its campaigns. On PostgreSQL the three go to
the server in one psycopg pipeline, compiled once per tenant scope (:func:`detail_pipelined`: one round trip, no
SQLAlchemy execution); elsewhere, and for a case a campaign links, on the session's connection
(:func:`detail_body`). The case is serialised as a queue page's case is (orjson, the bytes ``CaseOut`` gives); the
alerts, audit lines and campaigns by their models from the rows (their documents are any JSON, which Pydantic
writes as the response model did); the parts are joined in ``CaseDetailOut``'s field order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from pydantic import TypeAdapter
from sqlalchemy import Engine, Select, bindparam, exists, select
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertOut
from case_api.campaigns.models import CampaignCase, CampaignView
from case_api.campaigns.service import case_campaigns
from case_api.cases.models import Case, CaseEvent, CaseEventOut
from case_api.cases.queue import CASE_COLUMNS, CONTRACT_CHANGED, case_dict, queue_json, with_tenant
from case_api.db import DriverStatements, utcnow
from case_api.errors import NotFoundError
from case_api.scope import scoped
from case_api.sla.models import TenantContract
from case_api.sla.service import parse_contract, remember_contract
from case_api.tenants.models import Tenant

#: Whether a campaign links the case: most cases have none, and their detail skips the campaigns' statement.
_LINKED = exists().where(CampaignCase.case_id == Case.id).label("linked")
#: The detail's case row: the queue page's columns, the tenant's criticality and contract, whether a campaign links it.
DETAIL_ROW = (*CASE_COLUMNS, Tenant.asset_criticality, TenantContract.contract, CONTRACT_CHANGED, _LINKED)
_CASE = with_tenant(select(Case).where(Case.id == bindparam("case_id")), *DETAIL_ROW)
_ALERT_FIELDS = tuple(getattr(Alert, name) for name in AlertOut.model_fields)


def _alert_page(tenant: Any) -> Select[Any]:
    """A page of the alerts of case ``:case_id`` that belong to ``tenant`` (the case's), oldest first."""
    return (select(*_ALERT_FIELDS).where(Alert.case_id == bindparam("case_id"), Alert.tenant_id == tenant)
            .order_by(Alert.timestamp, Alert.id).limit(bindparam("limit")).offset(bindparam("offset")))


#: A page of the case's alerts (``:tenant_id``: the case's tenant), and of its audit lines, oldest first.
ALERT_PAGE = _alert_page(bindparam("tenant_id"))
EVENT_PAGE = (select(*(getattr(CaseEvent, name) for name in CaseEventOut.model_fields))
              .where(CaseEvent.case_id == bindparam("case_id")).order_by(CaseEvent.id)
              .limit(bindparam("limit")).offset(bindparam("offset")))
_ALERT_LIST = TypeAdapter(list[AlertOut])
_EVENT_LIST = TypeAdapter(list[CaseEventOut])
_CAMPAIGN_LIST = TypeAdapter(list[CampaignView])


def detail_body(*, session: Session, case_id: int, scope: Collection[str] | None, alerts: tuple[int, int],
                events: tuple[int, int], now: datetime | None = None) -> tuple[bytes, str]:
    """The detail of case ``case_id`` in ``scope`` (pages of ``(limit, offset)``) as ``CaseDetailOut`` serialises it
    by alias, with the clocks as of ``now`` (default: the time of reading), and its ETag.

    A case of another tenant is reported as not found, so its existence is not disclosed.
    """
    # Core statements on the session's connection: the ORM's handling of a statement costs as much as its rows.
    connection = session.connection()
    query = scoped(_CASE, Case.tenant_id, scope=None if scope is None else sorted(scope))
    row = connection.execute(query, {"case_id": case_id}).first()
    if row is None:
        raise NotFoundError(f"case {case_id} not found")
    found = remember_contract(session=session, tenant_id=row.tenant_id, document=row.contract)
    case = case_dict(row, found, row.asset_criticality or "medium", now or utcnow())
    alert_rows = connection.execute(ALERT_PAGE, {"case_id": case_id, "tenant_id": row.tenant_id,
                                                 "limit": alerts[0], "offset": alerts[1]}).all()
    event_rows = connection.execute(EVENT_PAGE, {"case_id": case_id, "limit": events[0], "offset": events[1]}).all()
    campaigns = case_campaigns(session=session, case_id=case_id, scope=scope) if row.linked else []
    return detail_json(case, alert_rows, event_rows, campaigns), f'"{case["version"]}"'


_STATEMENTS = DriverStatements()


def _case_statement(scope: frozenset[str] | None) -> Select[Any]:
    return scoped(_CASE, Case.tenant_id, scope=None if scope is None else sorted(scope))


def _alerts_statement(scope: frozenset[str] | None) -> Select[Any]:
    """:data:`ALERT_PAGE` with the case's tenant read from the case, within ``scope`` (none out of it)."""
    tenant = scoped(select(Case.tenant_id).where(Case.id == bindparam("case_id")), Case.tenant_id,
                    scope=None if scope is None else sorted(scope)).scalar_subquery()
    return _alert_page(tenant)


def _events_statement(scope: frozenset[str] | None) -> Select[Any]:
    """:data:`EVENT_PAGE` of a case within ``scope`` (none out of it)."""
    case = scoped(select(Case.id).where(Case.id == bindparam("case_id")), Case.tenant_id,
                  scope=None if scope is None else sorted(scope)).scalar_subquery()
    return EVENT_PAGE.where(CaseEvent.case_id == case)


def detail_pipelined(*, engine: Engine, case_id: int, scope: Collection[str] | None, alerts: tuple[int, int],
                     events: tuple[int, int]) -> tuple[bytes, str] | None:
    """:func:`detail_body` on PostgreSQL (``engine``: the read engine, autocommit) in one round trip: its three
    statements, compiled once per scope, sent by psycopg in one pipeline (the pages read by the case's id, within the
    scope, as the case's own statement reads it). ``None`` for a case a campaign links: :func:`detail_body` reads its
    campaigns. A connection found dead is replaced and the read made once more."""
    tenants = None if scope is None else frozenset(scope)
    dialect = engine.dialect
    case_sql, case_params = _STATEMENTS.get(dialect, ("case", tenants), lambda: _case_statement(tenants),
                                            ("case_id",))
    alerts_sql, alerts_params = _STATEMENTS.get(dialect, ("alerts", tenants), lambda: _alerts_statement(tenants),
                                                ("case_id", "limit", "offset"))
    events_sql, events_params = _STATEMENTS.get(dialect, ("events", tenants), lambda: _events_statement(tenants),
                                                ("case_id", "limit", "offset"))
    for attempt in range(2):
        with engine.connect() as connection:
            driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
            try:
                with driver.pipeline():
                    case_rows = driver.cursor(row_factory=namedtuple_row).execute(
                        case_sql, {**case_params, "case_id": case_id})
                    alert_rows = driver.cursor(row_factory=namedtuple_row).execute(alerts_sql, {
                        **alerts_params, "case_id": case_id, "limit": alerts[0], "offset": alerts[1]})
                    event_rows = driver.cursor(row_factory=namedtuple_row).execute(events_sql, {
                        **events_params, "case_id": case_id, "limit": events[0], "offset": events[1]})
            except psycopg.OperationalError:
                if attempt or not driver.broken:
                    raise
                connection.invalidate()
                continue
        row: Any = case_rows.fetchone()
        if row is None:
            raise NotFoundError(f"case {case_id} not found")
        if row.linked:
            return None
        case = case_dict(row, parse_contract(row.contract), row.asset_criticality or "medium", utcnow())
        return detail_json(case, alert_rows.fetchall(), event_rows.fetchall(), []), f'"{case["version"]}"'
    raise AssertionError("unreachable")


def detail_json(case: dict[str, Any], alert_rows: Sequence[Any], event_rows: Sequence[Any],
                campaigns: list[CampaignView]) -> bytes:
    """``CaseDetailOut`` serialised by alias: ``case`` (``case_dict``'s), its alerts' and audit lines' rows (columns
    as attributes: :data:`ALERT_PAGE`'s and :data:`EVENT_PAGE`'s) and the campaigns linking it."""
    parts = (
        queue_json([case])[1:-2],  # the case's object without its closing brace
        b',"alerts":', _ALERT_LIST.dump_json(_ALERT_LIST.validate_python(alert_rows, from_attributes=True),
                                             by_alias=True),
        b',"events":', _EVENT_LIST.dump_json(_EVENT_LIST.validate_python(event_rows, from_attributes=True),
                                             by_alias=True),
        b',"campaigns":', _CAMPAIGN_LIST.dump_json(campaigns, by_alias=True),
        b"}",
    )
    return b"".join(parts)
