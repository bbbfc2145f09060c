"""The audit log: read it, verify its chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from case_api.audit.models import AuditEntryOut, AuditVerification
from case_api.audit.service import list_entries, verify_chain
from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import AUDIT_READERS, AUDIT_VERIFIERS
from case_api.bounds import DEFAULT_LIMIT, MAX_ID, Limit
from case_api.db import SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])

Text = Annotated[str | None, Query(max_length=200)]


@router.get("", response_model=list[AuditEntryOut])
def get_audit(
    session: SessionDep,
    scope: TenantScope,
    _reader: Annotated[Principal, Depends(require_roles(*AUDIT_READERS))],
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    actor: Text = None,
    action: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Page back: entries before this seq")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> list[AuditEntryOut]:
    """Newest first."""
    entries = list_entries(session=session, scope=scope, tenant_id=tenant, actor=actor, action=action,
                           target_type=target_type, target_id=target_id, before_seq=before_seq, limit=limit)
    return [AuditEntryOut.model_validate(entry) for entry in entries]


@router.get("/verify", response_model=AuditVerification)
def get_verification(
    session: SessionDep, _verifier: Annotated[Principal, Depends(require_roles(*AUDIT_VERIFIERS))]
) -> AuditVerification:
    """Walk the whole chain; ``ok: false`` names the first entry that breaks it."""
    return verify_chain(session=session)
