"""Contacts and the outbox: who hears about what, written in the transaction of what it reports.

`notify_new_cases` and `notify_sla_breach` are the call points: they add one outbox row per destination (the
case's tenant's contacts, then the SOC's from the settings), keyed so that calling them again for the same
case (and clock) adds nothing. Delivery is `delivery.OutboxDrainer`'s job, in another transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.cases.models import Case, Severity
from case_api.db import insert_for, utcnow
from case_api.errors import InvalidRequestError, NotFoundError
from case_api.notifications.models import (
    EMAIL_PATTERN,
    Channel,
    ContactIn,
    Notification,
    NotificationAttempt,
    NotificationEvent,
    TenantContact,
)
from case_api.notifications.senders import new_webhook_secret
from case_api.tenants.models import Tenant

#: Severities whose new cases are notified.
NOTIFIED_SEVERITIES = frozenset({Severity.HIGH.value, Severity.CRITICAL.value})
#: Contacts one member may have.
MAX_CONTACTS = 20


@dataclass(frozen=True)
class SocContacts:
    """The SOC's own destinations (from the settings: `SOC_NOTIFY_SOC_EMAILS`, `SOC_NOTIFY_SOC_WEBHOOK_URL`)."""

    emails: tuple[str, ...] = ()
    webhook_url: str | None = None


@dataclass(frozen=True)
class Destination:
    channel: str
    audience: str
    address: str
    contact_id: int | None = None

    @property
    def key(self) -> str:
        if self.contact_id is not None:
            return f"{self.audience}:{self.contact_id}"
        return f"{self.audience}:{hashlib.sha256(self.address.encode()).hexdigest()[:16]}"


# Contacts --------------------------------------------------------------------------------------------


def check_address(channel: Channel, address: str) -> None:
    if channel is Channel.EMAIL:
        if not re.fullmatch(EMAIL_PATTERN, address):
            raise InvalidRequestError(f"address: {address[:100]!r} is not an email address (name@example.org)")
        return
    try:
        parts = urlsplit(address)
        usable = parts.scheme in ("https", "http") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # e.g. "http://[" or a port out of range
        usable = False
    if not usable:
        raise InvalidRequestError("address: a webhook address is an http:// or https:// URL with a host name")


def add_contact(
    *, session: Session, tenant_id: str, contact_in: ContactIn, actor: str
) -> tuple[TenantContact, str | None]:
    """Add a contact to a registered tenant; a webhook gets a new signing secret, returned here only."""
    if session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    check_address(contact_in.channel, contact_in.address)
    existing = list(session.scalars(select(TenantContact).where(TenantContact.tenant_id == tenant_id)))
    if len(existing) >= MAX_CONTACTS:
        raise InvalidRequestError(f"tenant {tenant_id!r} has {MAX_CONTACTS} contacts, the most it may have")
    if any(c.channel == contact_in.channel.value and c.address == contact_in.address for c in existing):
        raise InvalidRequestError(f"tenant {tenant_id!r} has this {contact_in.channel.value} contact already")
    secret = new_webhook_secret() if contact_in.channel is Channel.WEBHOOK else None
    contact = TenantContact(tenant_id=tenant_id, channel=contact_in.channel.value, address=contact_in.address,
                            secret=secret, created_by=actor, created_at=utcnow())
    session.add(contact)
    session.flush()
    record(session, actor=actor, action="tenant.contact_added", target_type="contact", target_id=contact.id,
           tenant_id=tenant_id, detail={"channel": contact.channel, "address": contact.address})
    session.commit()
    return contact, secret


def list_contacts(*, session: Session, tenant_id: str) -> list[TenantContact]:
    if session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    query = select(TenantContact).where(TenantContact.tenant_id == tenant_id).order_by(TenantContact.id)
    return list(session.scalars(query))


def remove_contact(*, session: Session, tenant_id: str, contact_id: int, actor: str) -> None:
    """Remove a contact; its undelivered notifications fail at their next attempt (no address to use)."""
    contact = session.get(TenantContact, contact_id)
    if contact is None or contact.tenant_id != tenant_id:
        raise NotFoundError(f"contact {contact_id} of tenant {tenant_id!r} not found")
    record(session, actor=actor, action="tenant.contact_removed", target_type="contact", target_id=contact.id,
           tenant_id=tenant_id, detail={"channel": contact.channel, "address": contact.address})
    session.delete(contact)
    session.commit()


# The outbox ------------------------------------------------------------------------------------------


def destinations(*, session: Session, tenant_id: str, soc: SocContacts) -> list[Destination]:
    """The tenant's contacts, then the SOC's."""
    found = [Destination(channel=c.channel, audience="tenant", address=c.address, contact_id=c.id)
             for c in list_contacts(session=session, tenant_id=tenant_id)]
    found += [Destination(channel=Channel.EMAIL.value, audience="soc", address=email) for email in soc.emails]
    if soc.webhook_url:
        found.append(Destination(channel=Channel.WEBHOOK.value, audience="soc", address=soc.webhook_url))
    return found


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "tenant_id": case.tenant_id, "title": case.title, "severity": case.severity,
        "status": case.status, "alert_count": case.alert_count,
        "first_seen": case.first_seen.isoformat(), "last_seen": case.last_seen.isoformat(),
    }


def enqueue(*, session: Session, case: Case, event: NotificationEvent, data: dict[str, Any], soc: SocContacts,
            clock: str = "", to: Sequence[Destination] | None = None) -> int:
    """One outbox row per destination (`to`, default: the case's tenant's and the SOC's), unless it is there
    already; how many were added. Runs in the caller's transaction (committed with what it reports)."""
    if to is None:
        to = destinations(session=session, tenant_id=case.tenant_id, soc=soc)
    rows = [
        {
            "dedup_key": f"{event.value}:{case.id}:{clock}:{destination.key}",
            "tenant_id": case.tenant_id, "case_id": case.id, "event": event.value,
            "channel": destination.channel, "audience": destination.audience,
            "contact_id": destination.contact_id, "address": destination.address,
            "payload": {"type": event.value, "timestamp": utcnow().isoformat(), "data": data},
            "status": "pending", "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow(),
        }
        for destination in to
    ]
    if not rows:
        return 0
    insert = insert_for(session)
    statement = insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["dedup_key"])
    added = session.execute(statement.returning(Notification.id)).all()
    return len(added)


def notify_new_cases(*, session: Session, cases: Iterable[Case], soc: SocContacts) -> int:
    """Enqueue `case.opened` for every case of high or critical severity (once per case and destination: a case
    that rose to high with a later alert is announced then)."""
    added = 0
    by_tenant: dict[str, list[Destination]] = {}
    for case in cases:
        if case.severity in NOTIFIED_SEVERITIES:
            if case.tenant_id not in by_tenant:
                by_tenant[case.tenant_id] = destinations(session=session, tenant_id=case.tenant_id, soc=soc)
            added += enqueue(session=session, case=case, event=NotificationEvent.CASE_OPENED,
                             data={"case": case_summary(case)}, soc=soc, to=by_tenant[case.tenant_id])
    return added


def notify_sla_breach(*, session: Session, case: Case, clock: str, due_at: datetime, soc: SocContacts,
                      to: Sequence[Destination] | None = None) -> int:
    """Enqueue `case.sla_breached` for one clock (`acknowledge`, `triage`, `resolve`) of a case that passed its
    due time; once per case, clock and destination, whatever the number of calls. Call it in the transaction
    that records the breach. ``to``: the destinations when the caller has them (default: the case's tenant's
    and the SOC's)."""
    data = {"case": case_summary(case), "clock": clock, "due_at": due_at.isoformat()}
    return enqueue(session=session, case=case, event=NotificationEvent.SLA_BREACHED, data=data, soc=soc,
                   clock=clock, to=to)


def list_notifications(*, session: Session, tenant_id: str | None, case_id: int | None, status: str | None,
                       limit: int, offset: int) -> list[tuple[Notification, list[NotificationAttempt]]]:
    """The outbox and its delivery log, newest first."""
    query = select(Notification).order_by(Notification.id.desc()).limit(limit).offset(offset)
    if tenant_id is not None:
        query = query.where(Notification.tenant_id == tenant_id)
    if case_id is not None:
        query = query.where(Notification.case_id == case_id)
    if status is not None:
        query = query.where(Notification.status == status)
    notifications = list(session.scalars(query))
    attempts: dict[int, list[NotificationAttempt]] = {n.id: [] for n in notifications}
    if attempts:
        log_query = (select(NotificationAttempt).where(NotificationAttempt.notification_id.in_(attempts))
                     .order_by(NotificationAttempt.id))
        for attempt in session.scalars(log_query):
            attempts[attempt.notification_id].append(attempt)
    return [(n, attempts[n.id]) for n in notifications]


def soc_contacts(emails: Sequence[str], webhook_url: str | None) -> SocContacts:
    return SocContacts(emails=tuple(emails), webhook_url=webhook_url or None)
