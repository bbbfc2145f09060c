"""Contracts: read, set and reset a member's SLA contract; the clocks of cases under it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.cases.models import FINISHED_STATUSES, Case, CaseOut
from case_api.db import utcnow
from case_api.errors import NotFoundError
from case_api.scope import in_scope
from case_api.sla.clocks import DUE_COLUMNS, due_times, read_clocks, refresh_due_times
from case_api.sla.models import DEFAULT_CONTRACT, ContractOut, SlaContract, TenantContract
from case_api.tenants.models import Tenant

#: ``session.info`` key of the contracts a session has read, by tenant: placing a batch of alerts reads each
#: tenant's contract once.
_CACHE = "sla_contracts"
_FINISHED = [s.value for s in FINISHED_STATUSES]


def _cache(session: Session) -> dict[str, tuple[SlaContract, bool]]:
    cache: dict[str, tuple[SlaContract, bool]] = session.info.setdefault(_CACHE, {})
    return cache


def contracts_of(*, session: Session, tenant_ids: Iterable[str]) -> dict[str, tuple[SlaContract, bool]]:
    """Each tenant's contract and whether it is the default (no contract of its own)."""
    cache = _cache(session)
    wanted = set(tenant_ids) - cache.keys()
    if wanted:
        rows = session.execute(
            select(TenantContract.tenant_id, TenantContract.contract).where(TenantContract.tenant_id.in_(wanted))
        )
        stored: dict[str, dict[str, Any]] = {tenant_id: document for tenant_id, document in rows}
        for tenant_id in wanted:
            document = stored.get(tenant_id)
            cache[tenant_id] = (
                (SlaContract.model_validate(document), False) if document is not None else (DEFAULT_CONTRACT, True)
            )
    return cache


_TENANTS = (select(Tenant.id, Tenant.asset_criticality, TenantContract.contract)
            .outerjoin(TenantContract, TenantContract.tenant_id == Tenant.id))
_ONE_TENANT = _TENANTS.where(Tenant.id == bindparam("tenant_id"))


def criticality_and_contracts(*, session: Session, tenant_ids: Iterable[str]) -> dict[str, str]:
    """Each tenant's asset criticality, its contract read into the session's cache on the way: what a page of
    cases needs of its tenants, in one query (an outer join) rather than one per table."""
    wanted = set(tenant_ids)
    if not wanted:
        return {}
    if len(wanted) == 1:  # one case's (its detail, a change): a statement built once
        rows = session.execute(_ONE_TENANT, {"tenant_id": next(iter(wanted))})
    else:
        rows = session.execute(_TENANTS.where(Tenant.id.in_(wanted)))
    criticality: dict[str, str] = {}
    for tenant_id, level, document in rows:
        criticality[tenant_id] = level
        remember_contract(session=session, tenant_id=tenant_id, document=document)
    return criticality


def remember_contract(*, session: Session, tenant_id: str, document: dict[str, Any] | None) -> tuple[SlaContract, bool]:
    """The tenant's contract from its stored ``document`` (``None``: it has none, the default applies), kept in the
    session's cache; what the cache holds already wins (it was read in this session)."""
    cache = _cache(session)
    found = cache.get(tenant_id)
    if found is None:
        found = cache[tenant_id] = parse_contract(document)
    return found


def parse_contract(document: dict[str, Any] | None) -> tuple[SlaContract, bool]:
    """The contract a tenant's stored ``document`` gives (``None``: the default) and whether it is the default."""
    return (SlaContract.model_validate(document), False) if document is not None else (DEFAULT_CONTRACT, True)


def contract_of(*, session: Session, tenant_id: str) -> SlaContract:
    return contracts_of(session=session, tenant_ids=[tenant_id])[tenant_id][0]


def refresh_case(*, session: Session, case: Case) -> None:
    """Recompute the case's stored due times (after its status, severity or clocks changed).

    Reading the contract does not flush the change under way first, so the case is written in one UPDATE
    (one version) with its new due times.
    """
    with session.no_autoflush:
        contract = contract_of(session=session, tenant_id=case.tenant_id)
    refresh_due_times(case, contract)


def with_clocks(*, session: Session, cases: Sequence[Case], outs: Sequence[CaseOut]) -> list[CaseOut]:
    """``outs`` (the API's view of ``cases``, changed in place) with each case's SLA clocks as of now."""
    contracts = contracts_of(session=session, tenant_ids={case.tenant_id for case in cases})
    now = utcnow()
    for case, out in zip(cases, outs, strict=True):
        contract, default = contracts[case.tenant_id]
        out.sla = read_clocks(case, contract, now=now, default=default)
    return list(outs)


def get_contract(*, session: Session, tenant_id: str, scope: Collection[str] | None) -> ContractOut:
    """The member's contract (its own, or the default); another member's is not found, like a missing one."""
    if not in_scope(scope, tenant_id) or session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    row = session.get(TenantContract, tenant_id)
    if row is None:
        return ContractOut(tenant_id=tenant_id, default=True, contract=DEFAULT_CONTRACT)
    return ContractOut(tenant_id=tenant_id, default=False, contract=SlaContract.model_validate(row.contract),
                       updated_at=row.updated_at, updated_by=row.updated_by)


def set_contract(*, session: Session, tenant_id: str, contract: SlaContract | None, actor: str) -> ContractOut:
    """Give the member ``contract`` (``None``: back to the default) and recompute its open cases' due times."""
    if session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    row = session.get(TenantContract, tenant_id, with_for_update=True)
    previous = None if row is None else row.contract
    new = None if contract is None else contract.model_dump(mode="json")
    if previous != new:
        record(session, actor=actor, action="tenant.contract_changed", target_type="tenant", target_id=tenant_id,
               tenant_id=tenant_id, detail={"from": previous, "to": new})
    if contract is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(TenantContract(tenant_id=tenant_id, contract=contract.model_dump(mode="json"),
                                   updated_at=utcnow(), updated_by=actor))
    else:
        row.contract = contract.model_dump(mode="json")
        row.updated_at = utcnow()
        row.updated_by = actor
    session.flush()
    _cache(session).pop(tenant_id, None)
    _refresh_open_cases(session=session, tenant_id=tenant_id)
    session.commit()
    return get_contract(session=session, tenant_id=tenant_id, scope=None)


def _refresh_open_cases(*, session: Session, tenant_id: str) -> None:
    """New due times for every open case of the tenant.

    Written with a plain UPDATE: due times are derived from the contract, not a change to the case, so
    its version (what an analyst's ``If-Match`` names) stays.
    """
    contract = contract_of(session=session, tenant_id=tenant_id)
    table = cast(Table, Case.__table__)
    statement = update(table).where(table.c.id == bindparam("case_id")).values(
        {column: bindparam(f"new_{column}") for column in DUE_COLUMNS}
    )
    query = select(Case).where(Case.tenant_id == tenant_id, Case.status.not_in(_FINISHED)).order_by(Case.id)
    rows: list[dict[str, Any]] = [
        {"case_id": case.id, **{f"new_{k}": v for k, v in due_times(case, contract).items()}}
        for case in session.scalars(query)
    ]
    for start in range(0, len(rows), 500):
        session.execute(statement, rows[start:start + 500])
    session.expire_all()
