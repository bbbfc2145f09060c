"""SLA endpoints: a member's contract (read by its own keys and the city roles, set by administrators) and the
SOC metrics (MTTA, MTTT, MTTR per member and severity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal, Role
from case_api.auth.roles import CASE_READERS
from case_api.db import SessionDep, utcnow
from case_api.errors import InvalidRequestError
from case_api.sla.metrics import MetricsOut, case_metrics
from case_api.sla.models import ContractOut, SlaContract
from case_api.sla.service import get_contract, set_contract

router = APIRouter(tags=["sla"])

TenantPath = Annotated[str, Path(max_length=63)]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


@router.get("/tenants/{tenant_id}/contract", response_model=ContractOut,
            dependencies=[Depends(require_roles(*CASE_READERS))])
def read_contract(tenant_id: TenantPath, session: SessionDep, scope: TenantScope) -> ContractOut:
    """The member's SLA contract: its own, or the default (`default: true`)."""
    return get_contract(session=session, tenant_id=tenant_id, scope=scope)


@router.put("/tenants/{tenant_id}/contract", response_model=ContractOut)
def put_contract(tenant_id: TenantPath, contract: SlaContract, session: SessionDep, admin: Admin) -> ContractOut:
    """Give the member its own contract; the due times of its open cases follow at once."""
    return set_contract(session=session, tenant_id=tenant_id, contract=contract, actor=admin.actor)


@router.delete("/tenants/{tenant_id}/contract", response_model=ContractOut)
def delete_contract(tenant_id: TenantPath, session: SessionDep, admin: Admin) -> ContractOut:
    """Put the member back on the default contract."""
    return set_contract(session=session, tenant_id=tenant_id, contract=None, actor=admin.actor)


#: The period metrics cover unless asked otherwise, and the longest one they may cover.
DEFAULT_PERIOD = timedelta(days=30)
MAX_PERIOD = timedelta(days=366)


@router.get("/metrics", response_model=MetricsOut, dependencies=[Depends(require_roles(*CASE_READERS))])
def get_metrics(
    session: SessionDep,
    scope: TenantScope,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    since: Annotated[datetime | None, Query(description="Cases opened at or after (default: 30 days ago)")] = None,
    until: Annotated[datetime | None, Query(description="Cases opened before (default: now)")] = None,
) -> MetricsOut:
    """Mean and percentile time to acknowledge, triage and resolve (MTTA, MTTT, MTTR) per member and
    severity, with SLA breaches, over the cases opened in a period; a member's keys see their own only."""
    now = utcnow()
    end = _utc(until) if until else now
    try:
        start = _utc(since) if since else end - DEFAULT_PERIOD
    except OverflowError:
        raise InvalidRequestError("until is too early to count back from: give since as well") from None
    if start >= end:
        raise InvalidRequestError("since must be before until")
    if end - start > MAX_PERIOD:
        raise InvalidRequestError(f"a period of at most {MAX_PERIOD.days} days: narrow since/until")
    return case_metrics(session=session, scope=scope, since=start, until=end, now=now, tenant_id=tenant)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
