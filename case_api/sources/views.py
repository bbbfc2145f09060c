"""Source endpoints: tenants' onboarded log sources, scoped by tenant like every tenant datum."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import (
    SOURCE_ACCESS_READERS,
    SOURCE_AUDIT_READERS,
    SOURCE_MANAGERS,
    SOURCE_READERS,
    SOURCE_WRITERS,
)
from case_api.bounds import MAX_ID, IdPath
from case_api.db import SessionDep
from case_api.errors import PermissionDeniedError
from case_api.health.dependencies import HealthStoreDep
from case_api.health.service import sources_health
from case_api.scope import in_scope
from case_api.sources.models import (
    Source,
    SourceAccessOut,
    SourceCreated,
    SourceEventOut,
    SourceIn,
    SourceOut,
    SourcePatch,
)
from case_api.sources.service import (
    add_source,
    delete_source,
    get_source,
    issue_token,
    list_access,
    list_source_events,
    list_sources,
    update_source,
)
from case_api.tenants.models import TenantId
from citysoc.health import HealthStore

router = APIRouter(prefix="/sources", tags=["sources"])

Manager = Annotated[Principal, Depends(require_roles(*SOURCE_MANAGERS))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourceCreated)
def post_source(
    source_in: SourceIn,
    session: SessionDep,
    scope: TenantScope,
    writer: Annotated[Principal, Depends(require_roles(*SOURCE_WRITERS))],
) -> SourceCreated:
    """Register a source. An http source's bearer token is in the answer, once: it is stored only as a digest."""
    if not in_scope(scope, source_in.tenant_id):
        raise PermissionDeniedError("you may only add sources for your own tenant")
    source, token = add_source(session=session, source_in=source_in, actor=writer)
    return SourceCreated.model_validate({**SourceOut.model_validate(source).model_dump(), "token": token})


@router.get("", response_model=list[SourceOut], dependencies=[Depends(require_roles(*SOURCE_READERS))])
def get_sources(
    session: SessionDep,
    scope: TenantScope,
    store: HealthStoreDep,
    tenant: Annotated[TenantId | None, Query(description="Only this tenant's sources")] = None,
) -> list[SourceOut]:
    """Sources with their data health."""
    sources = list_sources(session=session, scope=scope, tenant_id=tenant)
    return _with_health(sources, store)


@router.get("/access", response_model=list[SourceAccessOut],
            dependencies=[Depends(require_roles(*SOURCE_ACCESS_READERS))])
def get_access(session: SessionDep) -> list[SourceAccessOut]:
    """How the intake recognises each source's senders: transports, networks, token digest, certificate
    fingerprint, cloud accounts. Never a token; only the service and admin roles may read it."""
    return [SourceAccessOut.model_validate(source) for source in list_access(session=session)]


@router.get("/audit", response_model=list[SourceEventOut],
            dependencies=[Depends(require_roles(*SOURCE_AUDIT_READERS))])
def get_audit(
    session: SessionDep,
    scope: TenantScope,
    tenant: Annotated[TenantId | None, Query(description="Only this tenant's")] = None,
    source_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this source's (also once it is deleted)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[SourceEventOut]:
    """The sources' audit trail, newest first: who added, changed, re-issued or deleted what."""
    events = list_source_events(session=session, scope=scope, tenant_id=tenant, source_id=source_id, limit=limit)
    return [SourceEventOut.model_validate(event) for event in events]


@router.get("/{source_id}", response_model=SourceOut, dependencies=[Depends(require_roles(*SOURCE_READERS))])
def get_one_source(source_id: IdPath, session: SessionDep, scope: TenantScope, store: HealthStoreDep) -> SourceOut:
    return _with_health([get_source(session=session, source_id=source_id, scope=scope)], store)[0]


@router.patch("/{source_id}", response_model=SourceOut)
def patch_source(source_id: IdPath, patch: SourcePatch, session: SessionDep, scope: TenantScope,
                 manager: Manager) -> SourceOut:
    """Change datasets, networks, cloud accounts or the pinned certificate (lists replace the current ones)."""
    source = update_source(session=session, source_id=source_id, scope=scope, patch=patch, actor=manager)
    return SourceOut.model_validate(source)


@router.post("/{source_id}/token", response_model=SourceCreated)
def post_token(source_id: IdPath, session: SessionDep, scope: TenantScope, manager: Manager) -> SourceCreated:
    """Issue an http source a new bearer token (shown once); the previous one stops working."""
    source, token = issue_token(session=session, source_id=source_id, scope=scope, actor=manager)
    return SourceCreated.model_validate({**SourceOut.model_validate(source).model_dump(), "token": token})


@router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_source(source_id: IdPath, session: SessionDep, scope: TenantScope, manager: Manager) -> Response:
    delete_source(session=session, source_id=source_id, scope=scope, actor=manager)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _with_health(sources: list[Source], store: HealthStore) -> list[SourceOut]:
    health = sources_health(store=store, sources=sources)
    return [SourceOut.model_validate(source).model_copy(update={"health": health[source.id]}) for source in sources]
