"""ASGI middleware at the edge of the API: body size, characters the database cannot store, security headers;
the access log and request ids.

Pure ASGI (not ``BaseHTTPMiddleware``), so a body is counted while it streams in.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import weakref
from typing import Any

import anyio.to_thread
import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Sent with every answer. The API serves JSON only; the documentation page needs its own scripts and
#: the inline bootstrap FastAPI writes, served from this origin (no CDN).
API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
#: No referrer leaves the service. The console's pages say ``same-origin`` instead of ``no-referrer``: under
#: ``no-referrer`` Chromium sends ``Origin: null`` with the console's own form posts, which the CSRF check
#: (console/web.py) must refuse; other sites still get no referrer.
API_REFERRER_POLICY = b"no-referrer"
CONSOLE_REFERRER_POLICY = b"same-origin"
#: The console's pages: its own script and style sheet only (no inline script or style), forms to itself.
CONSOLE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


class EdgeGuard:
    """Refuses what must not reach the application and adds the security headers to every answer.

    - a NUL character in the path or the query string: 422 (PostgreSQL cannot compare text with one);
    - a body over ``max_body_bytes``: 413, by its ``Content-Length`` before anything is read, else
      counted as it arrives (Starlette's own body limit answers in plain text, not the API's JSON);
    - every answer gets :data:`API_HEADERS`, a Content-Security-Policy (the documentation pages a
      looser one that allows their own scripts, the console its own script and style sheet) and
      ``Cache-Control: no-store`` on API data and console pages.
    """

    def __init__(self, app: ASGIApp, *, docs_prefix: str, max_body_bytes: int,
                 console_prefix: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.docs_prefix = docs_prefix
        self.console_prefix = console_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        is_docs = path.startswith(self.docs_prefix)
        is_console = self.console_prefix is not None and path.startswith(self.console_prefix)
        csp = DOCS_CSP if is_docs else CONSOLE_CSP if is_console else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.extend(API_HEADERS)
                headers.append((b"referrer-policy", CONSOLE_REFERRER_POLICY if is_console else API_REFERRER_POLICY))
                headers.append((b"content-security-policy", csp))
                if not is_docs:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await _send_json(send_with_headers, 422, "the path or query contains a NUL character (%00): remove it")
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send_with_headers, 413, body_too_large(self.max_body_bytes))
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI re-raises HTTP exceptions met while reading a body: the app answers 413.
                    raise HTTPException(413, body_too_large(self.max_body_bytes))
            return message

        await self.app(scope, counting_receive, send_with_headers)


def body_too_large(limit: int) -> str:
    return f"request body larger than {limit:,} bytes: send smaller batches"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


#: An ``X-Request-ID`` the caller sends is kept when it looks like an id (so it cannot forge log lines).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = structlog.get_logger("case_api.access")


class AccessLog:
    """One structured log line per request, and its request id.

    The request id is the caller's ``X-Request-ID`` when it is a plain token of at most 128
    characters, else a new one; it is echoed in the answer's ``X-Request-ID`` and bound to every log
    line written while the request runs. The access line (``event="request"``) carries the request id,
    method, path (never the query string), status, duration in milliseconds and, once authenticated,
    the user's id, role and tenant, as ``auth.dependencies.get_principal`` left them in the request
    state. It never carries a header, a key or a token.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered is not None and _REQUEST_ID.match(offered) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = scope.get("state", {}).get("principal")
            access_log.info(
                "request",
                request_id=request_id,
                method=scope.get("method", ""),
                path=scope.get("path", "")[:500],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=getattr(principal, "user_id", None),
                role=principal.role.value if principal is not None else None,
                tenant_id=getattr(principal, "tenant_id", None),
            )
            structlog.contextvars.clear_contextvars()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Admission:
    """At most ``limit`` requests at once past this point; the others wait their turn on the event loop,
    holding neither a worker thread nor a database connection.

    A request holds its session's connection across several thread-pool calls (the principal, the
    endpoint, the session's close) and holds no thread between them: with more requests in progress than
    connections, threads waiting for a connection could hold every thread that the connection holders need
    to finish, and everything stalled until the pool's timeout. With ``limit`` requests admitted, the
    thread pool set to ``limit`` threads and the pool holding more connections than that
    (``db.API_THREADS``, ``db.POOL``), no request waits for a connection.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:  # first request on this event loop (one per server process; tests run several)
            limiter = anyio.to_thread.current_default_thread_limiter()
            limiter.total_tokens = self.limit
            gate = self._gates[loop] = asyncio.Semaphore(self.limit)
        async with gate:
            await self.app(scope, receive, send)
