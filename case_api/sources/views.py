"""Source endpoints: tenants' onboarded log sources, scoped by tenant like every tenant datum."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal, Role
from case_api.db import SessionDep
from case_api.errors import PermissionDeniedError
from case_api.scope import in_scope
from case_api.sources.models import SourceIn, SourceOut
from case_api.sources.service import add_source, list_sources
from case_api.tenants.models import TenantId

router = APIRouter(prefix="/sources", tags=["sources"])

#: May register a source (tenant responders only for their own tenant; service: collectors onboarding).
SOURCE_WRITERS = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST, Role.TENANT_RESPONDER, Role.SERVICE)
#: May list sources (tenant roles only their own tenant's; rule authors for coverage).
SOURCE_READERS = (*SOURCE_WRITERS, Role.TENANT_VIEWER, Role.RULE_AUTHOR)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourceOut)
def post_source(
    source_in: SourceIn,
    session: SessionDep,
    scope: TenantScope,
    _writer: Annotated[Principal, Depends(require_roles(*SOURCE_WRITERS))],
) -> SourceOut:
    if not in_scope(scope, source_in.tenant_id):
        raise PermissionDeniedError("you may only add sources for your own tenant")
    return SourceOut.model_validate(add_source(session=session, source_in=source_in))


@router.get("", response_model=list[SourceOut])
def get_sources(
    session: SessionDep,
    scope: TenantScope,
    _reader: Annotated[Principal, Depends(require_roles(*SOURCE_READERS))],
    tenant: Annotated[TenantId | None, Query(description="Only this tenant's sources")] = None,
) -> list[SourceOut]:
    return [SourceOut.model_validate(s) for s in list_sources(session=session, scope=scope, tenant_id=tenant)]
