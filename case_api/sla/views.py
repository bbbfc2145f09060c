"""SLA endpoints: a member's contract (read by its own keys and the city roles, set by administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal, Role
from case_api.auth.roles import CASE_READERS
from case_api.db import SessionDep
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
