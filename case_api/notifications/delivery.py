"""Draining the outbox: claim due notifications, send each, log the attempt, retry with exponential backoff.

A notification is claimed by setting a lease (a compare-and-set UPDATE, so two drainers, in one process or
in two API replicas, never take the same row), sent outside any transaction, then settled: `sent`, or
tried again after `base * 2^(attempts-1)` (capped), or `failed` after `max_attempts`. A drainer that dies
holding a lease leaves the row to the next one once the lease expires: nothing is lost. A drainer that dies
after the peer accepted a message but before settling it sends it once more after the lease: delivery is
at least once, and the message keeps its id (`webhook-id`, `Message-ID`) so the receiver can drop the repeat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from case_api.db import utcnow
from case_api.notifications.models import (
    Channel,
    DeliveryStatus,
    Notification,
    NotificationAttempt,
    NotificationEvent,
    TenantContact,
)
from case_api.notifications.senders import DeliveryError, Notifier, OutgoingMessage

log = structlog.get_logger(__name__)

#: A check run before each drain that enqueues what became due by `now` (e.g. SLA clocks that ran past their
#: due time, through `service.notify_sla_breach`) in the session it is given; returns how many it added.
Sweep = Callable[[Session, datetime], int]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=2)

    def delay(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, ... up to the cap."""
        wait: timedelta = self.base * (2 ** (attempts - 1))
        return min(self.cap, wait)


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    swept: int = 0  # notifications the sweeps added
    ids: list[int] = field(default_factory=list)


class OutboxDrainer:
    """Sends what is due in the outbox with the notifiers of each channel."""

    def __init__(self, session_factory: Callable[[], Session], notifiers: Mapping[str, Notifier], *,
                 soc_webhook_secret: str | None = None, retry: RetryPolicy | None = None, batch: int = 50,
                 sweeps: Sequence[Sweep] = ()) -> None:
        self.session_factory = session_factory
        self.sweeps = list(sweeps)
        self.notifiers = dict(notifiers)
        self.soc_webhook_secret = soc_webhook_secret
        self.retry = retry or RetryPolicy()
        self.batch = batch

    def drain_once(self, now: datetime | None = None) -> DrainReport:
        """Send every notification due at `now` (default: the clock) that no other drainer holds."""
        now = now or utcnow()
        report = DrainReport()
        for sweep in self.sweeps:
            with self.session_factory() as session:
                report.swept += sweep(session, now)
                session.commit()
        for notification_id in self.claim(now):
            report.ids.append(notification_id)
            outcome = self._deliver(notification_id, now)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    def claim(self, now: datetime) -> list[int]:
        """Lease up to `batch` due notifications to this drainer."""
        free = or_(Notification.lease_until.is_(None), Notification.lease_until < now)
        due = (Notification.status == DeliveryStatus.PENDING.value) & (Notification.next_attempt_at <= now) & free
        claimed = []
        with self.session_factory() as session:
            candidates = session.scalars(select(Notification.id).where(due)
                                         .order_by(Notification.next_attempt_at, Notification.id).limit(self.batch))
            for notification_id in list(candidates):
                taken = session.execute(update(Notification).where(Notification.id == notification_id, due)
                                        .values(lease_until=now + self.retry.lease))
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(notification_id)
            session.commit()
        return claimed

    def _deliver(self, notification_id: int, now: datetime) -> str:
        with self.session_factory() as session:
            notification = session.get(Notification, notification_id)
            assert notification is not None
            try:
                message = self._message(session, notification)
                notifier = self.notifiers.get(notification.channel)
                if notifier is None:
                    raise DeliveryError(f"no {notification.channel} notifier configured"
                                        + (" (set SOC_SMTP_HOST)" if notification.channel == "email" else ""))
                detail, ok = notifier.send(message), True
            except DeliveryError as exc:
                detail, ok = exc.detail, False
            except Exception as exc:  # a notifier's unexpected error is a failed attempt, never a stuck row
                detail, ok = f"{notification.channel} {type(exc).__name__}", False
            return self._settle(session, notification, ok=ok, detail=detail, now=now)

    def _message(self, session: Session, notification: Notification) -> OutgoingMessage:
        secret = None
        if notification.channel == Channel.WEBHOOK.value:
            if notification.audience == "soc":
                secret = self.soc_webhook_secret
            else:
                contact = session.get(TenantContact, notification.contact_id) if notification.contact_id else None
                if contact is None:
                    raise DeliveryError("the contact was removed")
                secret = contact.secret
        subject, text = render(notification)
        return OutgoingMessage(message_id=f"msg_citysoc_{notification.id}", address=notification.address,
                               subject=subject, text=text, payload=notification.payload, secret=secret)

    def _settle(self, session: Session, notification: Notification, *, ok: bool, detail: str, now: datetime) -> str:
        notification.attempts += 1
        notification.lease_until = None
        session.add(NotificationAttempt(notification_id=notification.id, at=utcnow(), ok=ok, detail=detail))
        fields = {"notification": notification.id, "channel": notification.channel, "audience": notification.audience,
                  "tenant": notification.tenant_id, "attempt": notification.attempts}
        if ok:
            notification.status, notification.sent_at = DeliveryStatus.SENT.value, utcnow()
            notification.last_error = None
            outcome = "sent"
            log.info("notification sent", **fields)
        elif notification.attempts >= self.retry.max_attempts or detail == "the contact was removed":
            notification.status, notification.last_error = DeliveryStatus.FAILED.value, detail
            outcome = "failed"
            log.warning("notification failed for good", detail=detail, **fields)
        else:
            notification.next_attempt_at = now + self.retry.delay(notification.attempts)
            notification.last_error = detail
            outcome = "retried"
            log.info("notification will be retried", detail=detail, next_attempt_at=notification.next_attempt_at,
                     **fields)
        session.commit()
        return outcome

    def run(self, stop: threading.Event, interval: float) -> None:
        """Drain every `interval` seconds until `stop` is set (the case API's background thread)."""
        while not stop.is_set():
            try:
                self.drain_once()
            except Exception as exc:  # a database hiccup must not end the thread; the next round retries
                log.error("outbox drain failed", error_type=type(exc).__name__)  # its text may name a URL
            stop.wait(interval)


def render(notification: Notification) -> tuple[str, str]:
    """Subject and plain text of a notification (email; webhooks carry the JSON payload)."""
    data = notification.payload.get("data", {})
    case = data.get("case", {})
    where = f"case {case.get('id')} at {case.get('tenant_id')}"
    if notification.event == NotificationEvent.SLA_BREACHED.value:
        subject = f"[CitySOC] SLA breached ({data.get('clock')}) on {case.get('severity')} {where}"
        lead = f"The {data.get('clock')} time of this case was due at {data.get('due_at')} and has passed."
    else:
        subject = f"[CitySOC] new {case.get('severity')} {where}"
        lead = "A new case of high or critical severity is open."
    lines = [lead, "", f"Case:      {case.get('id')} - {case.get('title')}", f"Member:    {case.get('tenant_id')}",
             f"Severity:  {case.get('severity')}", f"Status:    {case.get('status')}",
             f"Alerts:    {case.get('alert_count')}", f"Activity:  {case.get('first_seen')} .. {case.get('last_seen')}",
             "", f"soc cases show {case.get('id')}  (GET /api/v1/cases/{case.get('id')})"]
    return subject[:250], "\n".join(lines) + "\n"
