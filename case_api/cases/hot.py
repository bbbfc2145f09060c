"""The hottest requests, ``GET /cases`` (the queue), ``GET /cases/{id}`` and ``PATCH /cases/{id}``, answered before
FastAPI's routing.

FastAPI resolves a request's route and its dependency graph (session, two security schemes, principal, role,
scope, every query parameter and the body validated by Pydantic) in Python on every request: about as much CPU as
a cached queue page costs to read. :class:`HotCases` answers these requests itself when it can tell, without the
database, everything FastAPI would decide, and otherwise leaves the request to the application untouched:

- the key is an API key (``Authorization: Bearer`` or ``X-API-Key``, as ``auth.dependencies`` picks it) that
  this process verified within its cache's ttl and whose last use it wrote within the minute
  (``auth.service.cached_principal``), or else one read as ``get_principal`` reads it (``authenticate``, on the
  worker thread of the request, on the read engine); a bearer JWT, an unknown, revoked or expired key or a disabled
  user goes to the application, which reads it again and refuses it;
- the role may read cases (``CASE_READERS``) or, for a change, work them (``CASE_WORKERS``); the tenant scope is
  ``auth.service.tenant_scope``, the one place that decides it;
- each query parameter is one the endpoint declares, given once, in its plain form (digits within the
  declared bounds, ``true``/``false``, a status's value, a tenant id's characters); anything else
  (validation errors included) goes to the application, which answers it as before;
- a change has no query string, one ``If-Match`` at most (an ETag as ``versions.parse_if_match`` reads it) and a
  JSON body (``Content-Type: application/json``, its ``Content-Length`` given and at most
  :data:`MAX_CHANGE_BODY` bytes) that ``CasePatch`` accepts as FastAPI would give it (``json.loads``, then the
  model); the body read for it is passed on with the request otherwise;
- a case that is not found (or not in scope) for a read goes to the application too, which answers the 404; a
  change's refusals (404, 409, 412, 422) are answered here as the application's handler answers them
  (``{"detail": message}``).

The bodies and the ETag are made by the endpoints' own functions (``cases.views.read_queue``, ``read_detail``,
``write_patch``) on a worker thread, so they are the same bytes. The principal is left in the request state for
the access log, as the application's dependency leaves it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from case_api.auth.dependencies import MAX_SECRET_LENGTH
from case_api.auth.models import Principal
from case_api.auth.roles import CASE_READERS, CASE_WORKERS
from case_api.auth.service import authenticate, cached_principal, tenant_scope
from case_api.auth.tokens import looks_like_jwt
from case_api.bounds import DEFAULT_LIMIT, MAX_ID, MAX_LIMIT, MAX_OFFSET
from case_api.cases.models import CasePatch, CaseStatus
from case_api.cases.versions import parse_if_match
from case_api.cases.views import DETAIL_PAGE, read_detail, read_queue, write_patch
from case_api.db import read_retrying
from case_api.errors import CaseApiError

_STATUSES = {status.value: status for status in CaseStatus}
_DIGITS = re.compile(r"[1-9][0-9]{0,9}|0")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}")
_QUEUE_PARAMETERS = frozenset({"tenant", "status", "open", "limit", "offset"})
_DETAIL_PARAMETERS = frozenset({"alerts_limit", "alerts_offset", "events_limit", "events_offset"})
#: Query values Pydantic reads as booleans that are plainly so.
_BOOLEANS = {"true": True, "false": False}
#: The largest change body answered here (a ``CasePatch`` is a few dozen bytes); a larger one goes to the application.
MAX_CHANGE_BODY = 4096
#: ``IfMatch``'s ``max_length``.
_MAX_IF_MATCH = 200


def _number(value: str | None, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= high else None


def _parameters(query_string: bytes, allowed: frozenset[str]) -> dict[str, str] | None:
    """The query's parameters, or ``None`` when one is not ``allowed`` or given twice (left to the app)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    found = dict(pairs)
    if len(found) != len(pairs) or not found.keys() <= allowed:
        return None
    return found


def _queue(query_string: bytes) -> dict[str, Any] | None:
    given = _parameters(query_string, _QUEUE_PARAMETERS)
    if given is None:
        return None
    tenant = given.get("tenant")
    if tenant is not None and not _TENANT.fullmatch(tenant):
        return None
    status = given.get("status")
    if status is not None and status not in _STATUSES:
        return None
    open_only = _BOOLEANS.get(given.get("open", "false"))
    limit = _number(given.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _number(given.get("offset"), 0, 0, MAX_OFFSET)
    if open_only is None or limit is None or offset is None:
        return None
    return {"tenant_id": tenant, "status": _STATUSES[status] if status is not None else None,
            "open_only": open_only, "limit": limit, "offset": offset}


def _detail(query_string: bytes) -> dict[str, tuple[int, int]] | None:
    given = _parameters(query_string, _DETAIL_PARAMETERS) if query_string else {}
    if given is None:
        return None
    pages = [(_number(given.get(f"{kind}_limit"), DETAIL_PAGE, 1, MAX_LIMIT),
              _number(given.get(f"{kind}_offset"), 0, 0, MAX_OFFSET)) for kind in ("alerts", "events")]
    (alerts_limit, alerts_offset), (events_limit, events_offset) = pages
    if alerts_limit is None or alerts_offset is None or events_limit is None or events_offset is None:
        return None
    return {"alerts": (alerts_limit, alerts_offset), "events": (events_limit, events_offset)}


def _principal(scope: Scope, state: State) -> Principal | str | None:
    """The caller, when the key cache answers for it as ``auth.dependencies.get_principal`` would; else the API key
    to read as it would (``authenticate``); ``None`` for what is left to the application (no key, a bearer JWT, an
    over-long or expired key)."""
    bearer = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization" and bearer is None:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            bearer = credentials.strip() if scheme.lower() == "bearer" else ""
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1").strip()
    secret = bearer or api_key
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    if bearer and getattr(state, "token_verifier", None) is not None and looks_like_jwt(secret):
        return None
    try:
        principal = cached_principal(secret=secret, cache=getattr(state, "key_cache", None),
                                     throttle=getattr(state, "last_use", None))
    except CaseApiError:  # expired: the application says so
        return None
    return secret if principal is None else principal


def _authenticated(state: State, secret: str) -> Principal | None:
    """The principal of API key ``secret`` read as ``get_principal`` reads it (``authenticate``: the key and its user,
    the last use written at most once a minute, the key cache filled), on the read engine: ``None`` when the
    application is to answer (an unknown, revoked or expired key, a disabled user)."""
    try:
        return read_retrying(state.read_session_factory, lambda session: authenticate(
            session=session, secret=secret, throttle=getattr(state, "last_use", None),
            cache=getattr(state, "key_cache", None)))
    except CaseApiError:
        return None


class HotCases:
    """ASGI: answers the queue and case reads and the case changes it can (see the module), passes everything else to
    ``app``."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.queue_path = f"{prefix}/cases"
        self.case_prefix = f"{prefix}/cases/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "GET" and await self._answer(scope, send):
                return
            if scope["method"] == "PATCH":
                passed_on = await self._change(scope, receive, send)
                if passed_on is None:
                    return
                receive = passed_on
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        state: State = scope["app"].state
        read: Callable[[frozenset[str] | None], tuple[bytes, str | None]]
        if path == self.queue_path:
            queue = _queue(query)
            if queue is None:
                return False
            read = lambda tenants: (read_queue(state, tenants, **queue), None)  # noqa: E731
        elif path.startswith(self.case_prefix):
            case_id = _number(path[len(self.case_prefix):], 0, 1, MAX_ID)
            pages = _detail(query)
            if not case_id or pages is None:
                return False
            read = lambda tenants: read_detail(state, case_id, tenants, **pages)  # noqa: E731
        else:
            return False
        caller = _principal(scope, state)
        if caller is None or (isinstance(caller, Principal) and caller.role not in CASE_READERS):
            return False

        def answer() -> tuple[Principal, bytes, str | None] | None:
            principal = _authenticated(state, caller) if isinstance(caller, str) else caller
            if principal is None or principal.role not in CASE_READERS:
                return None
            try:
                return principal, *read(tenant_scope(principal))
            except CaseApiError:  # not found: the application answers it
                return None

        answered = await anyio.to_thread.run_sync(answer)
        if answered is None:
            return False
        principal, body, tag = answered
        await _send_answer(scope, send, principal, 200, body, tag)
        return True

    async def _change(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answers a case change it can decide and returns ``None``; else the ``receive`` to pass the request on
        with (the body it read, then the rest)."""
        path: str = scope["path"]
        state: State = scope["app"].state
        if not path.startswith(self.case_prefix) or scope.get("query_string"):
            return receive
        case_id = _number(path[len(self.case_prefix):], 0, 1, MAX_ID)
        headers = _change_headers(scope)
        if not case_id or headers is None:
            return receive
        caller = _principal(scope, state)
        if caller is None or (isinstance(caller, Principal) and caller.role not in CASE_WORKERS):
            return receive
        messages, body = await _read_body(receive)
        passed_on = _replaying(messages, receive)
        try:
            patch = CasePatch.model_validate(json.loads(body))
            if_match = parse_if_match(headers.get(b"if-match"))
        except (ValueError, ValidationError, CaseApiError):  # FastAPI's 422 (ValueError: not JSON)
            return passed_on

        def change() -> tuple[Principal, int, bytes, str | None] | None:
            principal = _authenticated(state, caller) if isinstance(caller, str) else caller
            if principal is None or principal.role not in CASE_WORKERS:
                return None
            try:
                return principal, 200, *write_patch(state, case_id, tenant_scope(principal), patch,
                                                    actor=principal.actor, if_match=if_match)
            except CaseApiError as error:  # as the application's handler answers it (app.py)
                return principal, error.status_code, _error_body(error.message), None

        answered = await anyio.to_thread.run_sync(change)
        if answered is None:
            return passed_on
        await _send_answer(scope, send, *answered)
        return None


def _change_headers(scope: Scope) -> dict[bytes, str] | None:
    """A change's ``If-Match`` (when given once) as ``{b"if-match": value}``; ``None`` for a request left to the
    application (another content type, no or a large ``Content-Length``, a repeated or over-long ``If-Match``)."""
    found: dict[bytes, str] = {}
    length = content_type = None
    for name, value in scope["headers"]:
        if name == b"if-match":
            if b"if-match" in found or len(value) > _MAX_IF_MATCH:
                return None
            found[b"if-match"] = value.decode("latin-1")
        elif name == b"content-length":
            length = value
        elif name == b"content-type":
            content_type = value
    if content_type is None or content_type.lower() != b"application/json":
        return None
    if length is None or not _DIGITS.fullmatch(length.decode("latin-1")) or int(length) > MAX_CHANGE_BODY:
        return None
    return found


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """The request's messages up to its whole body (or a disconnect), and the body."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` again, then what ``receive`` gives."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _error_body(message: str) -> bytes:
    # JSONResponse's rendering of {"detail": message}
    return json.dumps({"detail": message}, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


async def _send_answer(scope: Scope, send: Send, principal: Principal, status: int, body: bytes,
                       tag: str | None) -> None:
    scope.setdefault("state", {})["principal"] = principal  # for the access log
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("latin-1"))]
    if tag is not None:
        headers.append((b"etag", tag.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
