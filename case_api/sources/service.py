"""Source queries. Every read takes the caller's tenant scope (``None`` = all tenants)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from case_api.errors import ConflictError
from case_api.scope import scoped
from case_api.sources.models import Source, SourceIn
from case_api.tenants.service import require_tenants


def add_source(*, session: Session, source_in: SourceIn) -> Source:
    require_tenants(session=session, tenant_ids=[source_in.tenant_id])
    source = Source(tenant_id=source_in.tenant_id, kind=source_in.kind, name=source_in.name,
                    datasets=sorted(set(source_in.datasets)))
    session.add(source)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(
            f"tenant {source_in.tenant_id!r} already has a source named {source_in.name!r}: choose another name"
        ) from exc
    return source


def list_sources(*, session: Session, scope: Collection[str] | None, tenant_id: str | None = None) -> list[Source]:
    query = scoped(select(Source), Source.tenant_id, scope=scope, tenant_id=tenant_id)
    query = query.order_by(Source.tenant_id, Source.name)
    return list(session.scalars(query))
