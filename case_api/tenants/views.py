"""Tenant endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal, Role
from case_api.db import SessionDep
from case_api.tenants.models import TenantIn, TenantOut, TenantPatch
from case_api.tenants.service import create_tenant, list_tenants, update_tenant

router = APIRouter(prefix="/tenants", tags=["tenants"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantOut)
def add_tenant(
    tenant_in: TenantIn,
    session: SessionDep,
    admin: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> TenantOut:
    return TenantOut.model_validate(create_tenant(session=session, tenant_in=tenant_in, actor=admin.actor))


@router.get("", response_model=list[TenantOut])
def get_tenants(session: SessionDep, scope: TenantScope) -> list[TenantOut]:
    return [TenantOut.model_validate(t) for t in list_tenants(session=session, scope=scope)]


@router.patch("/{tenant_id}", response_model=TenantOut)
def patch_tenant(
    tenant_id: Annotated[str, Path(max_length=63)],
    patch: TenantPatch,
    session: SessionDep,
    admin: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> TenantOut:
    """Rename a tenant or change its asset criticality (which sets its cases' priority)."""
    return TenantOut.model_validate(update_tenant(session=session, tenant_id=tenant_id, patch=patch, actor=admin.actor))
