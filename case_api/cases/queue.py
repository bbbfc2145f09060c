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

import threading
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Row, Select
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
#: The columns of a case row that :func:`case_dict` reads, in its order (the queue page's and the case detail's).
CASE_COLUMNS = [getattr(Case, name) for name in (*_FIELDS, *_EXTRA)]
_FINISHED = frozenset(s.value for s in FINISHED_STATUSES)
#: Positions in a page row (``CASE_COLUMNS``, then the tenant's criticality and contract).
_AT = {name: index for index, name in enumerate((*_FIELDS, *_EXTRA))}
_STATUS, _SEVERITY, _VERSION, _PAUSED_SINCE = _AT["status"], _AT["severity"], _AT["version"], _AT["sla_paused_since"]
_STORED_CLOCKS = tuple((clock.value, _AT[stop], _AT[due]) for clock, stop, due in _CLOCKS)
_ACK_DUE, _TRIAGE_DUE, _RESOLVE_DUE = (_AT[due] for _clock, _stop, due in _CLOCKS)
#: A severity's priority by the tenant's asset criticality (``priority``), by the plain strings a row holds.
_PRIORITY = {(str(level), str(criticality)): priority(level, criticality)
             for level in Severity for criticality in Severity}
#: When the case's tenant's contract last changed (a column of the row :func:`with_tenant` joins).
CONTRACT_CHANGED = TenantContract.updated_at.label("contract_changed")
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
    return _page(session, query, limit, offset, (now or utcnow()) if clocks else None, _Horizon(None))[1]


@dataclass
class _Horizon:
    """The time until which a page's clocks stay as read (:class:`QueueCache`); ``None`` once a clock on the
    page was computed at the time of reading, or when nobody asks (the page will not be cached)."""

    until: datetime | None

    def computed(self) -> None:
        """A clock was computed as of the time of reading: the page holds for no time at all."""
        self.until = None

    def due(self, at: datetime) -> None:
        """A running, unbreached clock falls due ``at``: the page holds until then at most."""
        if self.until is not None and at < self.until:
            self.until = at


def _page(session: Session, query: Select[Any], limit: int, offset: int, now: datetime | None,
          horizon: _Horizon) -> tuple[list[Row[Any]], list[dict[str, Any]]]:
    """The page's rows and cases; ``horizon`` is narrowed to the time until which their clocks stay as read."""
    # Each case's tenant's asset criticality and contract come with it: one round trip for the page.
    query = with_tenant(query, *CASE_COLUMNS, Tenant.asset_criticality, TenantContract.contract, CONTRACT_CHANGED)
    rows = list(session.execute(query.limit(limit).offset(offset)).all())
    shapes: dict[tuple[int, str], _Shape] = {}
    return rows, [
        _case(row, remember_contract(session=session, tenant_id=row.tenant_id, document=row.contract),
              row.asset_criticality or "medium", now, shapes, horizon) for row in rows]


def with_tenant(query: Select[Any], *columns: Any) -> Select[Any]:
    """``query`` (over cases) selecting ``columns``, joined with each case's tenant and the tenant's contract."""
    return (query.with_only_columns(*columns)
            .outerjoin(Tenant, Tenant.id == Case.tenant_id)
            .outerjoin(TenantContract, TenantContract.tenant_id == Case.tenant_id))


@dataclass(frozen=True)
class _Cached:
    check: Select[Any]  # the page's stamp query, built once per key
    stamp: tuple[tuple[Any, ...], ...]
    driver_check: tuple[str, dict[str, Any]] | None  # on PostgreSQL, ``check`` compiled once (:func:`_driver_sql`)
    body: bytes
    until: datetime  # the clocks' breach flags hold before this time


class QueueCache:
    """Queue pages as their JSON bytes, per process, by the caller's tenant scope and the page's parameters.

    A cached page is served only after its stamp is read again and found equal: the page's case ids and
    versions (every change to a case bumps its version, except the due times a contract change rewrites),
    each case's tenant's asset criticality and the time its contract last changed, in one statement off the
    same index as the page, in place of the page's 26 columns turned into dicts and JSON. What else the page
    shows is the time of reading: a page is served until the first due time of a running, unbreached clock on
    it, and a page with a clock computed at the time of reading (a paused case, a finished one, one without
    stored due times) is not kept. The scope is part of the key and of the stamp's query, so a page is only
    ever served to a caller whose own query selects the same cases.
    """

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._pages: dict[Hashable, _Cached] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _Cached | None:
        return self._pages.get(key)

    def put(self, key: Hashable, page: _Cached) -> None:
        size = len(page.body)
        if size > self.max_bytes // 16:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            if self._bytes + size > self.max_bytes:  # full: start over rather than track an order of use
                self._pages.clear()
                self._bytes = 0
            self._pages[key] = page
            self._bytes += size


def queue_body(
    *,
    session: Session,
    cache: QueueCache,
    scope: Collection[str] | None,
    tenant_id: str | None = None,
    status: CaseStatus | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> bytes:
    """:func:`queue_json` of :func:`queue_page` (clocks as of ``now``, default the time of reading), from
    ``cache`` when its stamp still holds (:class:`QueueCache`)."""
    at = now or utcnow()
    key = (None if scope is None else frozenset(scope), tenant_id, status, open_only, limit, offset)
    cached = cache.get(key)
    if cached is not None and at < cached.until:
        if cached.driver_check is not None:
            stamp = tuple(tuple(row) for row in session.connection().exec_driver_sql(*cached.driver_check))
        else:
            stamp = tuple(tuple(row) for row in session.execute(cached.check))
        if stamp == cached.stamp:
            return cached.body
    query = queue_query(scope=scope, tenant_id=tenant_id, status=status, open_only=open_only)
    horizon = _Horizon(datetime.max.replace(tzinfo=at.tzinfo))
    rows, cases = _page(session, query, limit, offset, at, horizon)
    body = queue_json(cases)
    until = horizon.until
    if until is not None:
        check = cached.check if cached is not None else with_tenant(
            query, Case.id, Case.version, Tenant.asset_criticality, CONTRACT_CHANGED).limit(limit).offset(offset)
        stamp = tuple((row.id, row.version, row.asset_criticality, row.contract_changed) for row in rows)
        driver_check = cached.driver_check if cached is not None else _driver_sql(session, check)
        cache.put(key, _Cached(check=check, stamp=stamp, driver_check=driver_check, body=body, until=until))
    return body


def _driver_sql(session: Session, check: Select[Any]) -> tuple[str, dict[str, Any]] | None:
    """On PostgreSQL, the stamp query as the driver's SQL and parameters, compiled once: read again for every
    cached page served, it skips SQLAlchemy's statement caching and ORM execution (about half its CPU). Its
    values are the stamp's as read through the ORM (ids, versions, strings and timestamps with a time zone,
    compared as instants). ``None`` elsewhere (SQLite gives timestamps as strings) or when a parameter would
    need a type's conversion."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return None
    compiled = check.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.params)
    if not all(type(value) in (int, str) for value in params.values()):
        return None
    return str(compiled), params


def queue_json(cases: list[dict[str, Any]]) -> bytes:
    """The page as ``list[CaseOut]`` serialises it (UTC datetimes with ``Z``, as Pydantic writes them)."""
    return orjson.dumps(cases, option=orjson.OPT_UTC_Z)


def case_dict(row: Row[Any], found: tuple[SlaContract, bool], criticality: str, now: datetime) -> dict[str, Any]:
    """One case row (:data:`CASE_COLUMNS` first) as ``CaseOut``'s dict, its clocks as of ``now``; ``found`` is its
    tenant's contract and whether that is the default (:func:`~case_api.sla.service.remember_contract`)."""
    return _case(row, found, criticality, now, {}, _Horizon(None))


def _case(row: Row[Any], found: tuple[SlaContract, bool], criticality: str, now: datetime | None,
          shapes: dict[tuple[int, str], _Shape], horizon: _Horizon) -> dict[str, Any]:
    out = dict(zip(_FIELDS, row, strict=False))  # the row's first columns are _FIELDS, in order
    severity: str = row[_SEVERITY]
    out["sla"] = None if now is None else _clocks(row, severity, found, now, shapes, horizon)
    out["priority"] = _PRIORITY[severity, criticality]
    out["version"] = row[_VERSION]
    return out


def _clocks(row: Row[Any], severity: str, found: tuple[SlaContract, bool], now: datetime,
            shapes: dict[tuple[int, str], _Shape], horizon: _Horizon) -> dict[str, Any]:
    contract, default = found
    stored = (row[_STATUS] not in _FINISHED and row[_PAUSED_SINCE] is None and row[_ACK_DUE] is not None
              and row[_TRIAGE_DUE] is not None and row[_RESOLVE_DUE] is not None)
    if not stored:
        horizon.computed()
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
        breached = (stop or now) > due
        sla[clock] = {"target_seconds": target, "due_at": due, "done_at": stop, "breached": breached}
        if stop is None and not breached:
            horizon.due(due)
    return sla
