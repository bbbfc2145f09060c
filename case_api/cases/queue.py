"""The queue read as plain data: a page of cases as :class:`~case_api.cases.models.CaseOut` shows them, built
from a column select and the stored SLA due times, without ORM objects or one Pydantic model per case.

The queue is the API's most frequent read (``GET /cases``) and the console's landing page. A page gives the
same JSON as ``CaseOut`` (same keys in the same order, same values): :func:`queue_json` is that body.

An open case that is not awaiting the member has its three due times stored (``*_due_at``, kept current on
every status, severity and contract change: case_api/sla/clocks.py), so its clocks are read off the row. A
paused case (its due times move while it waits), a finished case (its stored due times follow the contract it
closed under, the clocks the current one) and a case without stored due times get their clocks computed, as
:func:`case_api.sla.clocks.read_clocks` does for one case.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Row
from sqlalchemy.orm import Session

from case_api.cases.models import FINISHED_STATUSES, Case, CaseStatus, Severity, priority
from case_api.cases.service import QueueFilter, queue_query
from case_api.db import utcnow
from case_api.sla.clocks import read_clocks
from case_api.sla.models import Clock, SlaContract, TenantContract
from case_api.sla.service import remember_contract
from case_api.tenants.models import Tenant

#: ``CaseOut``'s stored fields, in its order (``sla``, ``priority`` and ``version`` follow them).
_FIELDS = ("id", "tenant_id", "title", "status", "severity", "group_key", "alert_count", "first_seen", "last_seen",
           "created_at", "updated_at", "assignee", "resolution", "merged_into_id", "techniques", "closed_at",
           "acknowledged_at", "triaged_at", "resolved_at", "sla_due_at")
#: Each clock: the column of its stop time and of its stored due time.
_CLOCKS = ((Clock.ACKNOWLEDGE, "acknowledged_at", "acknowledge_due_at"), (Clock.TRIAGE, "triaged_at", "triage_due_at"),
           (Clock.RESOLVE, "resolved_at", "resolve_due_at"))
_EXTRA = ("version", "sla_paused_since", "sla_pauses", "acknowledge_due_at", "triage_due_at", "resolve_due_at")
_COLUMNS = [getattr(Case, name) for name in (*_FIELDS, *_EXTRA)]
_FINISHED = frozenset(s.value for s in FINISHED_STATUSES)
#: Positions in a page row (``_COLUMNS``, then the tenant's criticality and contract).
_AT = {name: index for index, name in enumerate((*_FIELDS, *_EXTRA))}
_STATUS, _SEVERITY, _VERSION, _PAUSED_SINCE = _AT["status"], _AT["severity"], _AT["version"], _AT["sla_paused_since"]
_STORED_CLOCKS = tuple((clock.value, _AT[stop], _AT[due]) for clock, stop, due in _CLOCKS)
_ACK_DUE, _TRIAGE_DUE, _RESOLVE_DUE = (_AT[due] for _clock, _stop, due in _CLOCKS)
#: A severity's priority by the tenant's asset criticality (``priority``), by the plain strings a row holds.
_PRIORITY = {(str(level), str(criticality)): priority(level, criticality)
             for level in Severity for criticality in Severity}
#: What a page's clocks share per contract and severity: the SLA object's first keys, and each clock's target.
_Shape = tuple[dict[str, Any], tuple[tuple[str, int, int, int], ...]]


def queue_page(
    *,
    session: Session,
    scope: Collection[str] | None,
    tenant_id: str | None = None,
    status: CaseStatus | None = None,
    open_only: bool = False,
    filters: QueueFilter | None = None,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
    clocks: bool = True,
) -> list[dict[str, Any]]:
    """A page of the queue (the order and scope of :func:`~case_api.cases.service.queue_query`), each case a dict
    with ``CaseOut``'s keys and values (datetimes and strings; the enums as their values), its clocks as of
    ``now`` (default: the time of reading); ``clocks=False`` leaves them out (``sla`` none), for a page that
    shows only the next due time."""
    query = queue_query(scope=scope, tenant_id=tenant_id, status=status, open_only=open_only, filters=filters)
    # Each case's tenant's asset criticality and contract come with it: one round trip for the page.
    query = (query.with_only_columns(*_COLUMNS, Tenant.asset_criticality, TenantContract.contract)
             .outerjoin(Tenant, Tenant.id == Case.tenant_id)
             .outerjoin(TenantContract, TenantContract.tenant_id == Case.tenant_id))
    rows = cast(Sequence[Row[Any]], session.execute(query.limit(limit).offset(offset)).all())
    at = (now or utcnow()) if clocks else None
    shapes: dict[tuple[int, str], _Shape] = {}
    return [_case(row, remember_contract(session=session, tenant_id=row.tenant_id, document=row.contract),
                  row.asset_criticality or "medium", at, shapes) for row in rows]


def queue_json(cases: list[dict[str, Any]]) -> bytes:
    """The page as ``list[CaseOut]`` serialises it (UTC datetimes with ``Z``, as Pydantic writes them)."""
    return orjson.dumps(cases, option=orjson.OPT_UTC_Z)


def _case(row: Row[Any], found: tuple[SlaContract, bool], criticality: str, now: datetime | None,
          shapes: dict[tuple[int, str], _Shape]) -> dict[str, Any]:
    out = dict(zip(_FIELDS, row, strict=False))  # the row's first columns are _FIELDS, in order
    severity: str = row[_SEVERITY]
    out["sla"] = None if now is None else _clocks(row, severity, found, now, shapes)
    out["priority"] = _PRIORITY[severity, criticality]
    out["version"] = row[_VERSION]
    return out


def _clocks(row: Row[Any], severity: str, found: tuple[SlaContract, bool], now: datetime,
            shapes: dict[tuple[int, str], _Shape]) -> dict[str, Any]:
    contract, default = found
    stored = (row[_STATUS] not in _FINISHED and row[_PAUSED_SINCE] is None and row[_ACK_DUE] is not None
              and row[_TRIAGE_DUE] is not None and row[_RESOLVE_DUE] is not None)
    if not stored:
        # The row carries every column the clocks read (its created_at, severity, stop times and pauses).
        return read_clocks(cast(Case, row), contract, now=now, default=default).model_dump()
    shape = shapes.get((id(contract), severity))
    if shape is None:
        level = Severity(severity)
        shape = shapes[id(contract), severity] = (
            {"contract": "default" if default else "tenant", "calendar": contract.calendar.describe(), "paused": False},
            tuple((clock, stop, due, int(contract.target(level, Clock(clock)).total_seconds()))
                  for clock, stop, due in _STORED_CLOCKS),
        )
    head, each = shape
    sla = dict(head)
    for clock, stop_at, due_at, target in each:
        stop: datetime | None = row[stop_at]
        due: datetime = row[due_at]
        sla[clock] = {"target_seconds": target, "due_at": due, "done_at": stop, "breached": (stop or now) > due}
    return sla
