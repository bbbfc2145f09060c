"""HTTP intake: `POST /v1/events`, an ASGI application (served by uvicorn beside the syslog listeners).

The body is NDJSON (one record per line, kept byte for byte) or a JSON array (one record per element),
optionally `Content-Encoding: gzip`; `Authorization: Bearer <token>` names the source, and with it the
tenant. A Pub/Sub push subscription with authentication sends a Google-signed ID token there instead: it is
verified (`collectors.google_id`) and its service account and audience name the source. A push subscription
without authentication cannot set a header: its endpoint URL carries the source's token as `?token=` (the
shared verification token of Google's push samples). `?source=NAME` (or the
`X-Soc-Source` header) names the parser when the token's source does not fix one. A GET with
`X-Okta-Verification-Challenge` is Okta's event hook verification, answered with the challenge once the
token is known. Answers, always JSON with a `detail` that says what to do:

- 200 `{"accepted": N, "request_id": ...}` only once the batch is durable in the spool;
- 400 a body that is not NDJSON or a JSON array at all, a broken gzip, an unknown or wrong parser
  (a line that is not JSON inside NDJSON is accepted: its parser dead-letters it with the reason);
- 401 no token or an unknown one, or a push ID token that fails a check; 403 a record naming a cloud
  account not registered for the source;
- 413 a body over the limit (checked while reading, and after decompression: a gzip bomb stops there),
  one record over the record limit, or more records than the per-request limit; 415 an encoding other than gzip;
- 429 with `Retry-After` when the spool is full; 503 with `Retry-After` when Google's certificates cannot be
  fetched to check a push ID token.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from datetime import UTC, datetime

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.attribution import Credential, push_credential
from collectors.errors import CollectorError, UnknownParserError
from collectors.google_id import CertificatesUnavailable, GoogleIdTokens, IdTokenRefused, looks_like_jwt
from collectors.intake import ForeignContent, Intake, NotAttributed, ParserChoiceError, SpoolFullError
from collectors.listeners.config import Limits
from collectors.listeners.hec import HecError, hec_routes
from collectors.records import RawRecord

log = structlog.get_logger("collectors.listeners.http")


class BadBody(CollectorError):
    """The body cannot be read as events (400)."""


class TooLarge(CollectorError):
    """The body or one record is over its limit (413)."""


def http_app(intake: Intake, *, executor: Executor, limits: Limits,
             id_tokens: GoogleIdTokens | None = None) -> Starlette:
    """The ASGI application of the HTTP intake; `id_tokens` checks Pub/Sub push ID tokens (default: against
    Google's certificates)."""
    id_tokens = id_tokens or GoogleIdTokens()
    # memory: at most this many bodies (each under the limit) are held at once, whatever the clients do
    bodies = asyncio.Semaphore(limits.http_concurrent_bodies)

    async def events(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:16]
        peer = request.client.host if request.client else "unknown"
        bound = log.bind(request_id=request_id, peer=peer)
        token = _token(request)
        if token is None:
            return _answer(401, "send the source's token as 'Authorization: Bearer <token>'", request_id,
                           headers={"WWW-Authenticate": 'Bearer realm="citysoc"'})
        credential = Credential("token", token)
        bearer = _bearer(request.headers.get("authorization", ""))
        if bearer is not None and looks_like_jwt(bearer):  # a Pub/Sub push ID token: Google says who sent it
            try:
                identity = await asyncio.get_running_loop().run_in_executor(executor, id_tokens.identity, bearer)
            except IdTokenRefused as refused:
                intake.stats.add("http", "refused")
                bound.warning("push ID token refused", reason=refused.reason)
                return _answer(401, refused.reason, request_id, headers={"WWW-Authenticate": 'Bearer realm="citysoc"'})
            except CertificatesUnavailable as error:
                bound.warning("push ID token not checked", reason=error.reason)
                return _answer(503, "the push's ID token cannot be checked now (Google's certificates are out of "
                               "reach): delivered again later", request_id,
                               headers={"Retry-After": str(limits.retry_after_seconds)})
            credential = push_credential(identity.service_account, identity.audience)
        try:
            intake.resolve(peer=peer, transport="http", credential=credential)
        except NotAttributed as refused:
            intake.stats.add("http", "refused")
            bound.warning("sender refused", reason=refused.reason)
            return _answer(401, refused.reason, request_id, headers={"WWW-Authenticate": 'Bearer realm="citysoc"'})
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            return _answer(415, f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding",
                           request_id)
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            return _answer(400, "Content-Length is not a number", request_id)
        if declared > limits.http_max_body_bytes:
            return _answer(413, f"the body of {declared} bytes is over the limit of {limits.http_max_body_bytes}: "
                           "send smaller batches", request_id)
        async with bodies:
            return await _take(request, gzip=encoding != "identity", peer=peer, credential=credential,
                               request_id=request_id)

    async def _take(request: Request, *, gzip: bool, peer: str, credential: Credential, request_id: str) -> Response:
        """Read, split and accept the body of an authenticated request."""
        bound = log.bind(request_id=request_id, peer=peer)
        try:
            body = await _read_body(request.stream(), gzip=gzip, limit=limits.http_max_body_bytes)
            payloads = split_events(body, max_record=limits.http_max_record_bytes)
            if len(payloads) > limits.http_max_records:
                raise TooLarge(f"the body holds {len(payloads)} records, over the limit of {limits.http_max_records}")
        except TooLarge as error:
            return _answer(413, f"{error}: send smaller batches", request_id)
        except BadBody as error:
            return _answer(400, str(error), request_id)
        received = datetime.now(UTC)
        records = [RawRecord(payload, f"http {peer} {request_id} #{number}", received)
                   for number, payload in enumerate(payloads, start=1)]
        parser = request.query_params.get("source") or request.headers.get("x-soc-source")
        try:
            source = await asyncio.get_running_loop().run_in_executor(executor, lambda: intake.accept(
                records, peer=peer, transport="http", credential=credential, parser=parser))
        except NotAttributed as refused:  # the source was removed while the body arrived
            return _answer(401, refused.reason, request_id)
        except ForeignContent as refused:
            intake.stats.add("http", "refused", len(records))
            bound.warning("records refused", reason=refused.reason)
            return _answer(403, refused.reason, request_id)
        except (ParserChoiceError, UnknownParserError) as error:
            return _answer(400, str(error), request_id)
        except SpoolFullError:
            intake.stats.add("http", "full", len(records))
            return _answer(429, "the intake's spool is full: retry later", request_id,
                           headers={"Retry-After": str(limits.retry_after_seconds)})
        bound.debug("batch accepted", tenant=source.tenant, source=source.name, records=len(records))
        return JSONResponse({"accepted": len(records), "request_id": request_id})

    async def verify(request: Request) -> Response:
        """Okta's one-time event hook verification: a GET carrying `X-Okta-Verification-Challenge`, answered
        `{"verification": <the challenge>}` once the hook's Authorization names a registered source."""
        request_id = uuid.uuid4().hex[:16]
        challenge = request.headers.get("x-okta-verification-challenge")
        if challenge is None:
            return _answer(405, "POST events here; a GET is only Okta's event hook verification", request_id)
        token = _token(request)
        peer = request.client.host if request.client else "unknown"
        try:
            if token is None:
                raise NotAttributed("send the source's token as 'Authorization: Bearer <token>'")
            source = intake.resolve(peer=peer, transport="http", credential=Credential("token", token))
        except NotAttributed as refused:
            intake.stats.add("http", "refused")
            return _answer(401, refused.reason, request_id, headers={"WWW-Authenticate": 'Bearer realm="citysoc"'})
        log.info("okta event hook verified", tenant=source.tenant, source=source.name, request_id=request_id)
        return JSONResponse({"verification": challenge})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def hec_body(request: Request) -> bytes:
        """A HEC request's body within the same limits as `/v1/events`, refusals in HEC's terms."""
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            raise HecError(415, 6, "Invalid data format", f"Content-Encoding {encoding!r} is not supported")
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > limits.http_max_body_bytes:
            raise HecError(413, 6, "Invalid data format", f"the body of {declared} bytes is over the limit of "
                           f"{limits.http_max_body_bytes}: send smaller batches")
        async with bodies:
            try:
                return await _read_body(request.stream(), gzip=encoding != "identity",
                                        limit=limits.http_max_body_bytes)
            except TooLarge as error:
                raise HecError(413, 6, "Invalid data format", f"{error}: send smaller batches") from None
            except BadBody as error:
                raise HecError(400, 6, "Invalid data format", str(error)) from None

    return Starlette(routes=[*hec_routes(intake, executor=executor, limits=limits, read_body=hec_body),
                             Route("/v1/events", events, methods=["POST"]),
                             Route("/v1/events", verify, methods=["GET"]),
                             Route("/v1/health", health, methods=["GET"])])


def split_events(body: bytes, *, max_record: int) -> list[bytes]:
    """The records of a body: a JSON array's elements (as compact JSON) or NDJSON's non-blank lines."""
    stripped = body.strip()
    if not stripped:
        raise BadBody("the body holds no events: send NDJSON (one JSON object per line) or a JSON array")
    if stripped[:1] == b"[":
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            raise BadBody(f"the body starts like a JSON array but is not one: {error}") from None
        if not isinstance(document, list) or not document:
            raise BadBody("the JSON array is empty")
        payloads = [orjson.dumps(item) for item in document]
    else:
        payloads = [line.rstrip(b"\r") for line in stripped.split(b"\n") if line.strip()]
        if not any(_is_json(line) for line in payloads):
            raise BadBody("the body is neither NDJSON (one JSON object per line) nor a JSON array")
    for number, payload in enumerate(payloads, start=1):
        if len(payload) > max_record:
            raise TooLarge(f"record #{number} has {len(payload)} bytes, over the limit of {max_record}")
    return payloads


async def _read_body(chunks: AsyncIterator[bytes], *, gzip: bool, limit: int) -> bytes:
    """The body, decompressed, never holding more than `limit` bytes of it (compressed or not)."""
    body = bytearray()
    received = 0
    inflater = zlib.decompressobj(wbits=31) if gzip else None
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise TooLarge(f"the body is over the limit of {limit} bytes")
        if inflater is None:
            body += chunk
            continue
        data = chunk
        while data:
            try:
                body += inflater.decompress(data, limit + 1 - len(body))
            except zlib.error as error:
                raise BadBody(f"the body is not valid gzip: {error}") from None
            if len(body) > limit:
                raise TooLarge(f"the decompressed body is over the limit of {limit} bytes")
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:  # a second gzip member: concatenated files
                data, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
    if inflater is not None and not inflater.eof:
        raise BadBody("the gzip body is truncated")
    return bytes(body)


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _token(request: Request) -> str | None:
    """The bearer token, or `?token=` for senders that cannot set a header (a Pub/Sub push subscription's
    endpoint URL carries it; the intake logs no URLs)."""
    return _bearer(request.headers.get("authorization", "")) or (request.query_params.get("token") or None)


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _answer(status: int, detail: str, request_id: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "request_id": request_id}, status_code=status, headers=headers)
