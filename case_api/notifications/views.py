"""Notification endpoints: a member's contacts (city admins manage them) and the outbox's delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from case_api.auth.dependencies import require_roles
from case_api.auth.models import Principal, Role
from case_api.bounds import DEFAULT_LIMIT, IdPath, IdQuery, Limit, Offset
from case_api.db import SessionDep
from case_api.notifications.models import (
    AttemptOut,
    ContactCreated,
    ContactIn,
    ContactOut,
    DeliveryStatus,
    NotificationOut,
)
from case_api.notifications.service import add_contact, list_contacts, list_notifications, remove_contact

router = APIRouter(tags=["notifications"])

#: Who manages members' contacts, and who reads the delivery log (addresses and URLs of every member).
CONTACT_MANAGERS = (Role.ADMIN,)
LOG_READERS = (Role.ADMIN, Role.SOC_LEAD)

TenantPath = Annotated[str, Path(max_length=63)]


@router.post("/tenants/{tenant_id}/contacts", status_code=status.HTTP_201_CREATED, response_model=ContactCreated)
def post_contact(
    tenant_id: TenantPath,
    contact_in: ContactIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(*CONTACT_MANAGERS))],
) -> ContactCreated:
    """Add an email address or a webhook URL that hears of the member's new high/critical cases and SLA
    breaches. A webhook's signing secret (Standard Webhooks, `whsec_...`) is in this answer only."""
    contact, secret = add_contact(session=session, tenant_id=tenant_id, contact_in=contact_in, actor=principal.actor)
    return ContactCreated.model_validate({**ContactOut.model_validate(contact).model_dump(), "secret": secret})


@router.get("/tenants/{tenant_id}/contacts", response_model=list[ContactOut],
            dependencies=[Depends(require_roles(*CONTACT_MANAGERS))])
def get_contacts(tenant_id: TenantPath, session: SessionDep) -> list[ContactOut]:
    """The member's contacts (never their secrets)."""
    return [ContactOut.model_validate(c) for c in list_contacts(session=session, tenant_id=tenant_id)]


@router.delete("/tenants/{tenant_id}/contacts/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_contact(
    tenant_id: TenantPath,
    contact_id: IdPath,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(*CONTACT_MANAGERS))],
) -> None:
    remove_contact(session=session, tenant_id=tenant_id, contact_id=contact_id, actor=principal.actor)


@router.get("/notifications", response_model=list[NotificationOut],
            dependencies=[Depends(require_roles(*LOG_READERS))])
def get_notifications(
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    case_id: IdQuery = None,
    delivery: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[NotificationOut]:
    """The outbox, newest first: each notification's status, attempts and delivery log."""
    rows = list_notifications(session=session, tenant_id=tenant, case_id=case_id,
                              status=delivery.value if delivery else None, limit=limit, offset=offset)
    return [NotificationOut.model_validate({**NotificationOut.model_validate(n).model_dump(exclude={"log"}),
                                            "log": [AttemptOut.model_validate(a) for a in attempts]})
            for n, attempts in rows]
