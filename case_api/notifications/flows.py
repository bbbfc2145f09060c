"""Settings -> the notifiers, the SOC's contacts and the outbox drainer of one API process."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session

from case_api.notifications.delivery import OutboxDrainer, RetryPolicy
from case_api.notifications.senders import EmailNotifier, Notifier, SmtpConfig, WebhookNotifier
from case_api.notifications.service import SocContacts
from case_api.notifications.sla import sla_breach_sweep
from case_api.settings import Settings


def soc_contacts(settings: Settings) -> SocContacts:
    return SocContacts(emails=tuple(settings.notify_soc_emails), webhook_url=settings.notify_soc_webhook_url or None)


def notifiers(settings: Settings) -> dict[str, Notifier]:
    """A webhook notifier always; an email notifier when an SMTP relay is configured (`SOC_SMTP_HOST`)."""
    found: dict[str, Notifier] = {WebhookNotifier.channel: WebhookNotifier()}
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        found[EmailNotifier.channel] = EmailNotifier(SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
            starttls=settings.smtp_starttls, username=settings.smtp_username, password=password))
    return found


def outbox_drainer(settings: Settings, session_factory: Callable[[], Session]) -> OutboxDrainer:
    secret = settings.notify_soc_webhook_secret
    return OutboxDrainer(session_factory, notifiers(settings),
                         soc_webhook_secret=secret.get_secret_value() if secret else None,
                         retry=RetryPolicy(max_attempts=settings.notify_max_attempts, base=settings.notify_backoff),
                         sweeps=[sla_breach_sweep(soc_contacts(settings))])


@asynccontextmanager
async def drain_in_background(app: FastAPI) -> AsyncIterator[None]:
    """The API's lifespan: a thread drains the outbox every `SOC_NOTIFY_INTERVAL` seconds while the server
    runs (uvicorn under `soc api` and `soc run`; an in-process client runs no lifespan, so it only enqueues)."""
    settings: Settings = app.state.settings
    drainer: OutboxDrainer = app.state.outbox_drainer
    stop = threading.Event()
    thread = None
    if settings.notify_interval > 0:
        thread = threading.Thread(target=drainer.run, args=(stop, settings.notify_interval),
                                  name="notification-outbox", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
