"""Tenant scope applied to data: the one definition of what a scope lets a caller see.

A scope is what :func:`case_api.auth.service.tenant_scope` decides for a caller: ``None`` for the
city roles (every tenant), otherwise the tenant ids a tenant role may see (empty for a tenant role
that has no tenant). Every query for tenant data goes through :func:`scoped`; a write naming a
tenant checks :func:`in_scope`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVarTuple

from sqlalchemy import Select, SQLColumnExpression

_Row = TypeVarTuple("_Row")


def scoped(
    query: Select[*_Row],
    column: SQLColumnExpression[str],
    *,
    scope: Collection[str] | None,
    tenant_id: str | None = None,
) -> Select[*_Row]:
    """``query`` restricted to rows whose tenant ``column`` the caller may see.

    - ``scope=None`` (city roles): no restriction, every tenant's rows.
    - ``scope`` a collection: only those tenants' rows; an empty scope matches no row.
    - ``tenant_id``: only that tenant's rows, on top of the scope. A tenant outside the scope
      therefore yields no rows at all, the same answer as a tenant without data, so the result
      never tells a caller whether another tenant exists or what it holds. A lookup of one object
      built on this reports it as not found (404), never as forbidden.
    """
    if scope is not None:
        query = query.where(column.in_(scope))
    if tenant_id is not None:
        query = query.where(column == tenant_id)
    return query


def in_scope(scope: Collection[str] | None, tenant_id: str) -> bool:
    """Whether ``scope`` lets the caller see ``tenant_id`` (``None`` = every tenant).

    For requests that name a tenant to write to; reads filter with :func:`scoped` instead.
    """
    return scope is None or tenant_id in scope
