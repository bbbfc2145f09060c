"""Real peers for notification tests: an SMTP server (aiosmtpd) and an HTTP receiver that verifies Standard
Webhooks signatures with the reference library (`standardwebhooks`), both on 127.0.0.1 in this process."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, _class=EmailMessage, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    payload: Any


class WebhookReceiver:
    """Accepts POSTs whose Standard Webhooks signature verifies with the secret set for their path; answers
    401 to a bad signature and `fail[path]` times 500 before accepting."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.fail: dict[str, int] = {}
        self.verified: list[Delivery] = []
        self.refused: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                code = receiver.receive(self.path, dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.fail.get(path, 0) > 0:
            self.fail[path] -= 1
            return 500
        secret = self.secrets.get(path)
        if secret is None:
            self.refused.append(path)
            return 404
        try:
            payload = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
        except WebhookVerificationError:
            self.refused.append(path)
            return 401
        self.verified.append(Delivery(path, {k.lower(): v for k, v in headers.items()}, payload))
        return 204


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
