"""Data-health and dead-letter endpoints: a tenant's keys see only their own sources and records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.roles import DEAD_LETTER_READERS, SOURCE_READERS
from case_api.bounds import DEFAULT_LIMIT, IdPath, Limit
from case_api.db import SessionDep
from case_api.health.dependencies import DeadLetterStoreDep, HealthStoreDep
from case_api.health.models import DeadLetterOut, SourceHealthOut
from case_api.health.service import list_dead_letters, sources_health
from case_api.sources.service import get_source
from case_api.tenants.models import TenantId

router = APIRouter(tags=["data health"])


@router.get("/sources/{source_id}/health", response_model=SourceHealthOut,
            dependencies=[Depends(require_roles(*SOURCE_READERS))])
def get_source_health(source_id: IdPath, session: SessionDep, scope: TenantScope,
                      store: HealthStoreDep) -> SourceHealthOut:
    """Last event received, events per minute over the last hour, parse-error rate, last dead letter."""
    source = get_source(session=session, source_id=source_id, scope=scope)
    return sources_health(store=store, sources=[source])[source.id]


@router.get("/deadletters", response_model=list[DeadLetterOut],
            dependencies=[Depends(require_roles(*DEAD_LETTER_READERS))])
def get_dead_letters(
    scope: TenantScope,
    store: DeadLetterStoreDep,
    tenant: Annotated[TenantId | None, Query(description="Only this tenant's")] = None,
    source: Annotated[str | None, Query(max_length=200, description="Only this collector source (its parser, "
                                                                    "e.g. syslog)")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> list[DeadLetterOut]:
    """Records the collectors could not parse, newest first, with the reason."""
    return list_dead_letters(store=store, scope=scope, tenant_id=tenant, source=source, limit=limit)
