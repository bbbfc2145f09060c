"""The case detail (``GET /cases/{id}`` and a ``PATCH``'s answer) read with plain statements built once, as the
bytes ``CaseDetailOut`` serialises by alias.

Three statements: the case with its tenant's asset criticality and contract and whether a campaign links it (one
row, the queue page's columns: cases/queue.py turns it into ``CaseOut``'s dict and its clocks), a page of its
alerts, a page of its audit lines; and, for a case a campaign links, its campaigns. The case is serialised as a
queue page's case is (orjson, the bytes ``CaseOut`` gives); the alerts, audit lines and campaigns by their models
from the rows (their documents are any JSON, which Pydantic writes as the response model did); the parts are
joined in ``CaseDetailOut``'s field order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from case_api.alerts.models import Alert, AlertOut
from case_api.campaigns.models import CampaignCase, CampaignView
from case_api.campaigns.service import case_campaigns
from case_api.cases.models import Case, CaseEvent, CaseEventOut
from case_api.cases.queue import CASE_COLUMNS, CONTRACT_CHANGED, case_dict, queue_json, with_tenant
from case_api.db import utcnow
from case_api.errors import NotFoundError
from case_api.scope import scoped
from case_api.sla.models import TenantContract
from case_api.sla.service import remember_contract
from case_api.tenants.models import Tenant

#: Whether a campaign links the case: most cases have none, and their detail skips the campaigns' statement.
_LINKED = exists().where(CampaignCase.case_id == Case.id).label("linked")
#: The detail's case row: the queue page's columns, the tenant's criticality and contract, whether a campaign links it.
DETAIL_ROW = (*CASE_COLUMNS, Tenant.asset_criticality, TenantContract.contract, CONTRACT_CHANGED, _LINKED)
_CASE = with_tenant(select(Case).where(Case.id == bindparam("case_id")), *DETAIL_ROW)
_ALERT_FIELDS = tuple(getattr(Alert, name) for name in AlertOut.model_fields)
ALERT_PAGE = (select(*_ALERT_FIELDS)
           .where(Alert.case_id == bindparam("case_id"), Alert.tenant_id == bindparam("tenant_id"))
           .order_by(Alert.timestamp, Alert.id).limit(bindparam("limit")).offset(bindparam("offset")))
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
                                                 "limit": alerts[0], "offset": alerts[1]})
    event_rows = connection.execute(EVENT_PAGE, {"case_id": case_id, "limit": events[0], "offset": events[1]})
    campaigns = case_campaigns(session=session, case_id=case_id, scope=scope) if row.linked else []
    return detail_json(case, alert_rows, event_rows, campaigns), f'"{case["version"]}"'


def detail_json(case: dict[str, Any], alert_rows: Iterable[Any], event_rows: Iterable[Any],
                campaigns: list[CampaignView]) -> bytes:
    """``CaseDetailOut`` serialised by alias: ``case`` (``case_dict``'s), its alerts' and audit lines' rows (columns
    as attributes: :data:`ALERT_PAGE`'s and :data:`EVENT_PAGE`'s) and the campaigns linking it."""
    parts = (
        queue_json([case])[1:-2],  # the case's object without its closing brace
        b',"alerts":', _ALERT_LIST.dump_json([AlertOut.model_validate(a, from_attributes=True) for a in alert_rows],
                                             by_alias=True),
        b',"events":', _EVENT_LIST.dump_json([CaseEventOut.model_validate(e, from_attributes=True) for e in event_rows],
                                             by_alias=True),
        b',"campaigns":', _CAMPAIGN_LIST.dump_json(campaigns, by_alias=True),
        b"}",
    )
    return b"".join(parts)
