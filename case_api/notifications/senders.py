"""How a notification leaves: the notifier extension point, SMTP email and signed webhooks.

Webhooks follow the Standard Webhooks specification (standardwebhooks.com, v1): every POST carries
`webhook-id` (the message id, the same on every retry, so a receiver can drop repeats), `webhook-timestamp`
(Unix seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
keyed with the base64-decoded part of the contact's `whsec_` secret. A receiver verifies it with any Standard
Webhooks library (Svix's among them) and refuses a timestamp older than its tolerance (5 minutes in theirs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import smtplib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import Any, ClassVar

import httpx
import orjson

SECRET_PREFIX = "whsec_"
USER_AGENT = "CitySOC-Notifier/1"


class DeliveryError(Exception):
    """The peer did not take the message; `detail` says what it answered (no secret, no URL)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:500]


@dataclass(frozen=True)
class OutgoingMessage:
    """One notification as a notifier sends it."""

    message_id: str  # stable across retries
    address: str
    subject: str
    text: str
    payload: dict[str, Any]
    secret: str | None = None  # webhooks: the `whsec_` signing secret


class Notifier(ABC):
    """Delivers one message on one channel; raises DeliveryError when the peer does not take it."""

    channel: ClassVar[str]

    @abstractmethod
    def send(self, message: OutgoingMessage) -> str:
        """Deliver the message; return what the peer answered (for the delivery log)."""


_REGISTRY: dict[str, type[Notifier]] = {}


def register_notifier(cls: type[Notifier]) -> type[Notifier]:
    _REGISTRY[cls.channel] = cls
    return cls


def notifier_class(channel: str) -> type[Notifier]:
    try:
        return _REGISTRY[channel]
    except KeyError:
        raise ValueError(f"no notifier for channel {channel!r}; known: {', '.join(sorted(_REGISTRY))}") from None


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "citysoc@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


@register_notifier
class EmailNotifier(Notifier):
    """Plain-text email through one SMTP relay (STARTTLS and login when configured)."""

    channel = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, message: OutgoingMessage) -> str:
        mail = EmailMessage(policy=SMTP_POLICY)  # RFC 5322 folding and CRLF line ends
        mail["From"] = self.config.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        domain = self.config.sender.rpartition("@")[2] or "citysoc"
        mail["Message-ID"] = f"<{message.message_id}@{domain}>"  # the same on a retry: mail clients fold repeats
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self.config.host, self.config.port, timeout=self.config.timeout) as smtp:
                if self.config.starttls:
                    smtp.starttls()
                if self.config.username:
                    smtp.login(self.config.username, self.config.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())
            raise DeliveryError(f"SMTP recipient refused: {codes}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}") from None
        if refused:
            raise DeliveryError("SMTP recipient refused")
        return "SMTP 250 accepted"


def _text(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)[:200]


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (Standard Webhooks v1)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@register_notifier
class WebhookNotifier(Notifier):
    """A JSON POST signed per Standard Webhooks; any 2xx is delivered, anything else is tried again."""

    channel = "webhook"

    def __init__(self, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport,
                                   headers={"User-Agent": USER_AGENT})

    def send(self, message: OutgoingMessage) -> str:
        if not message.secret:
            raise DeliveryError("webhook contact has no signing secret")
        body = orjson.dumps(message.payload)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(message.secret, message_id=message.message_id, timestamp=timestamp, body=body),
        }
        try:
            response = self.client.post(message.address, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"HTTP {type(exc).__name__}") from None  # its text would name the URL
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code}")
        return f"HTTP {response.status_code}"

    def close(self) -> None:
        self.client.close()
