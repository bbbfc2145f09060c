"""Splunk HTTP Event Collector (HEC) compatible routes on the HTTP intake, for senders that stream only to
Splunk: GitHub's audit log streaming ("Splunk" stream: domain, port, token; GitHub checks the endpoint at
`<domain>:<port>/services/collector`), and any HEC client.

- `POST /services/collector`, `/services/collector/event`, `/services/collector/event/1.0`: HEC's JSON event
  protocol, envelopes `{"time": ..., "host": ..., "source": ..., "sourcetype": ..., "index": ..., "event": ...}`
  stacked one after the other (concatenated JSON objects, whitespace between them allowed), optionally
  `Content-Encoding: gzip`. Each envelope's `event` is one record (an object as compact JSON, a string as
  written); the envelope's metadata is not kept: the record carries its own time, and the source's token
  decides the tenant. The source must fix its parser (`soc sources add --kind http --parser github.audit`),
  or the request names it (`?source=`).
- `GET /services/collector/health` (and `/1.0`): `{"text": "HEC is healthy", "code": 17}`.

Authentication is HEC's: `Authorization: Splunk <token>` (or HTTP Basic with the token as the password); the
token is the http source's token. `?token=` is refused with code 16, as Splunk refuses it unless query string
authorization is enabled. Answers are HEC's documented bodies `{"text": ..., "code": N}` with their HTTP
statuses (a `detail` is added where CitySOC has more to say): 0 Success (200, only once the records are durable
in the spool), 2 Token is required (401), 3 Invalid authorization (401), 4 Invalid token (403), 5 No data (400),
6 Invalid data format (400), 9 Server is busy (503, the spool is full; `Retry-After`), 12 Event field is
required (400), 13 Event field cannot be blank (400), 16 Query string authorization is not enabled (400).
Indexer acknowledgement (`/services/collector/ack`, channels) and the raw endpoint are not offered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.attribution import Credential
from collectors.errors import UnknownParserError
from collectors.intake import ForeignContent, Intake, NotAttributed, ParserChoiceError, SpoolFullError
from collectors.listeners.config import Limits
from collectors.records import RawRecord

log = structlog.get_logger("collectors.listeners.hec")

EVENT_PATHS = ("/services/collector", "/services/collector/event", "/services/collector/event/1.0")
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")

BodyReader = Callable[[Request], Awaitable[bytes]]


class HecError(Exception):
    """An answer in HEC's terms: its code, text and HTTP status, and what CitySOC adds."""

    def __init__(self, status: int, code: int, text: str, detail: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status, self.code, self.text, self.detail, self.headers = status, code, text, detail, headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"text": self.text, "code": self.code}
        if self.detail:
            body["detail"] = self.detail
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def hec_routes(intake: Intake, *, executor: Executor, limits: Limits, read_body: BodyReader) -> list[Route]:
    """The HEC routes; `read_body` reads a request's body within the HTTP intake's limits (raising `HecError`)."""

    async def events(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:16]
        peer = request.client.host if request.client else "unknown"
        bound = log.bind(request_id=request_id, peer=peer)
        try:
            credential = _credential(request)
            try:
                intake.resolve(peer=peer, transport="http", credential=credential)
            except NotAttributed as refused:
                intake.stats.add("http", "refused")
                bound.warning("HEC sender refused", reason=refused.reason)
                raise HecError(403, 4, "Invalid token", refused.reason) from None
            payloads = split_envelopes(await read_body(request), max_record=limits.http_max_record_bytes)
            if len(payloads) > limits.http_max_records:
                raise HecError(413, 6, "Invalid data format", f"the body holds {len(payloads)} events, over the "
                               f"limit of {limits.http_max_records}: send smaller batches")
            received = datetime.now(UTC)
            records = [RawRecord(payload, f"hec {peer} {request_id} #{number}", received)
                       for number, payload in enumerate(payloads, start=1)]
            parser = request.query_params.get("source")
            try:
                source = await asyncio.get_running_loop().run_in_executor(executor, lambda: intake.accept(
                    records, peer=peer, transport="http", credential=credential, parser=parser))
            except NotAttributed as refused:  # the source was removed while the body arrived
                raise HecError(403, 4, "Invalid token", refused.reason) from None
            except ForeignContent as refused:
                intake.stats.add("http", "refused", len(records))
                raise HecError(400, 6, "Invalid data format", refused.reason) from None
            except (ParserChoiceError, UnknownParserError) as error:
                raise HecError(400, 6, "Invalid data format", f"{error}: register the source with the parser "
                               "its events need (soc sources add --kind http --parser github.audit)") from None
            except SpoolFullError:
                intake.stats.add("http", "full", len(records))
                raise HecError(503, 9, "Server is busy", "the intake's spool is full: retry later",
                               headers={"Retry-After": str(limits.retry_after_seconds)}) from None
        except HecError as answer:
            return answer.response()
        bound.debug("HEC batch accepted", tenant=source.tenant, source=source.name, records=len(records))
        return JSONResponse({"text": "Success", "code": 0})

    async def health(_: Request) -> Response:
        return JSONResponse({"text": "HEC is healthy", "code": 17})

    return [*(Route(path, events, methods=["POST"]) for path in EVENT_PATHS),
            *(Route(path, health, methods=["GET"]) for path in HEALTH_PATHS)]


def split_envelopes(body: bytes, *, max_record: int) -> list[bytes]:
    """The `event` of each stacked HEC envelope, as record payloads; `HecError` in HEC's terms."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HecError(400, 6, "Invalid data format", "the body is not UTF-8") from None
    decoder = json.JSONDecoder()
    payloads: list[bytes] = []
    position = _skip_space(text, 0)
    if position == len(text):
        raise HecError(400, 5, "No data")
    while position < len(text):
        try:
            envelope, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise HecError(400, 6, "Invalid data format", f"envelope #{len(payloads) + 1}: {error}") from None
        position = _skip_space(text, position)
        number = len(payloads) + 1
        if not isinstance(envelope, dict):
            raise HecError(400, 6, "Invalid data format", f"envelope #{number} is not a JSON object")
        if "event" not in envelope:
            raise HecError(400, 12, "Event field is required", f"envelope #{number} has no event")
        event = envelope["event"]
        if event is None or event == "" or event == {}:
            raise HecError(400, 13, "Event field cannot be blank", f"envelope #{number}")
        payload = event.encode() if isinstance(event, str) else orjson.dumps(event)
        if len(payload) > max_record:
            raise HecError(413, 6, "Invalid data format", f"event #{number} has {len(payload)} bytes, over the "
                           f"limit of {max_record}")
        payloads.append(payload)
    return payloads


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _credential(request: Request) -> Credential:
    if "token" in request.query_params:
        raise HecError(400, 16, "Query string authorization is not enabled",
                       "send the token as 'Authorization: Splunk <token>'")
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise HecError(401, 2, "Token is required", "send the source's token as 'Authorization: Splunk <token>'")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "splunk" and value:
        return Credential("token", value)
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        if password:
            return Credential("token", password)
    raise HecError(401, 3, "Invalid authorization", "send 'Authorization: Splunk <token>'")
