"""Tenant queries. Every read takes the caller's tenant scope (``None`` = all tenants)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.errors import ConflictError, NotFoundError, UnregisteredTenantError
from case_api.scope import scoped
from case_api.tenants.models import Tenant, TenantIn, TenantPatch


def create_tenant(*, session: Session, tenant_in: TenantIn, actor: str) -> Tenant:
    if session.get(Tenant, tenant_in.id) is not None:
        raise ConflictError(f"tenant {tenant_in.id!r} already exists")
    tenant = Tenant(id=tenant_in.id, name=tenant_in.name, asset_criticality=tenant_in.asset_criticality)
    session.add(tenant)
    record(session, actor=actor, action="tenant.created", target_type="tenant", target_id=tenant.id,
           tenant_id=tenant.id, detail={"name": tenant.name, "asset_criticality": tenant.asset_criticality})
    try:
        session.commit()
    except IntegrityError as exc:  # created concurrently since the check above
        session.rollback()
        raise ConflictError(f"tenant {tenant_in.id!r} already exists") from exc
    return tenant


def update_tenant(*, session: Session, tenant_id: str, patch: TenantPatch, actor: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    changes: dict[str, dict[str, str]] = {}
    if patch.name is not None and patch.name != tenant.name:
        changes["name"] = {"from": tenant.name, "to": patch.name}
        tenant.name = patch.name
    if patch.asset_criticality is not None and patch.asset_criticality != tenant.asset_criticality:
        changes["asset_criticality"] = {"from": tenant.asset_criticality, "to": patch.asset_criticality}
        tenant.asset_criticality = patch.asset_criticality
    if changes:
        record(session, actor=actor, action="tenant.changed", target_type="tenant", target_id=tenant.id,
               tenant_id=tenant.id, detail=changes)
        session.commit()
    return tenant


def list_tenants(*, session: Session, scope: Collection[str] | None) -> list[Tenant]:
    query = scoped(select(Tenant), Tenant.id, scope=scope).order_by(Tenant.id)
    return list(session.scalars(query))


def known_tenants(*, session: Session, tenant_ids: Iterable[str]) -> set[str]:
    """Those of ``tenant_ids`` that are registered."""
    wanted = set(tenant_ids)
    if not wanted:
        return set()
    return set(session.scalars(select(Tenant.id).where(Tenant.id.in_(wanted))))


def require_tenants(*, session: Session, tenant_ids: Iterable[str]) -> None:
    """Raise :class:`UnregisteredTenantError` naming every tenant id that is not registered."""
    wanted = set(tenant_ids)
    if not wanted:
        return
    known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(wanted))))
    missing = wanted - known
    if missing:
        raise UnregisteredTenantError(sorted(missing))
