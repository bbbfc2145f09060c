"""The hot requests (cases/hot.py): ``GET /cases``, ``GET /cases/{id}`` and ``PATCH /cases/{id}`` answered before
FastAPI's routing give the bytes, status and ETag the endpoints give, in the caller's scope; every request the
middleware cannot decide as the application would (an unknown, revoked or expired key, a disabled user, a role that
may not read or change cases, a parameter or body not in its plain form, a case not found for a read) is passed on
to the application, a change's body with it; a key this process has not verified yet is read as the application
reads it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from starlette.types import Message, Receive, Scope, Send

from case_api.auth.models import Role, User
from case_api.cases.hot import HotCases
from case_api.db import utcnow

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"


class Recorder:
    """The application behind the middleware under test: records what was passed on to it, and the body."""

    def __init__(self) -> None:
        self.passed: list[str] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.passed.append(f"{scope['path']}?{scope['query_string'].decode()}")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _hot(app: FastAPI, path: str, query: str, headers: dict[str, str], *, method: str = "GET",
         body: bytes = b"", recorder: Recorder | None = None) -> tuple[int, bytes, dict[str, str]]:
    """``method path?query`` through HotCases alone: its status, body and headers (599 when it passed the request
    on); a body is sent in two parts."""
    recorder = recorder or Recorder()
    middleware = HotCases(recorder, prefix="/api/v1")
    messages: list[Message] = []
    parts = [body[:len(body) // 2], body[len(body) // 2:]]

    async def receive() -> Message:
        part = parts.pop(0) if parts else b""
        return {"type": "http.request", "body": part, "more_body": bool(parts)}

    async def send(message: Message) -> None:
        messages.append(message)

    scope: Scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "app": app,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "state": {}}
    asyncio.run(middleware(scope, receive, send))
    start, sent = messages
    return start["status"], sent["body"], {k.decode(): v.decode() for k, v in start["headers"]}


def _change(app: FastAPI, case_id: int, change: dict[str, Any], headers: dict[str, str],
            recorder: Recorder | None = None, **extra: str) -> tuple[int, bytes, dict[str, str]]:
    body = orjson.dumps(change)
    sent = {**headers, "Content-Type": "application/json", "Content-Length": str(len(body)), **extra}
    return _hot(app, f"/api/v1/cases/{case_id}", "", sent, method="PATCH", body=body, recorder=recorder)


def _world(soc: SocApi, make_alert: MakeAlert) -> list[int]:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    ids: list[int] = []
    for n, tenant in enumerate([NG, RS, NG]):
        ids += soc.ingest(make_alert(tenant, user=f"user{n}", level="high"))["cases"]
    return ids


def test_hot_reads_answer_as_the_endpoints_do(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    member = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    reads = [("/api/v1/cases", "open=true&limit=50", soc.analyst), ("/api/v1/cases", "", member),
             ("/api/v1/cases", f"tenant={RS}&status=new&offset=1&limit=1", soc.analyst),
             ("/api/v1/cases", f"tenant={RS}", member),
             (f"/api/v1/cases/{ids[0]}", "", member), (f"/api/v1/cases/{ids[1]}", "alerts_limit=1&events_offset=0",
                                                       soc.analyst)]
    for path, query, headers in reads:
        answer = soc.client.get(f"{path}?{query}", headers=headers)  # verifies the key: this process caches it
        assert answer.status_code == 200, answer.text
        status, body, sent = _hot(app, path, query, headers)
        assert status == 200, (path, query)
        assert body == answer.content, (path, query)
        assert sent.get("etag") == answer.headers.get("etag")
        assert sent["content-type"] == answer.headers["content-type"]
    # Scope: a member's page and case reads hold only its own tenant's cases.
    status, body, _ = _hot(app, "/api/v1/cases", "", member)
    assert status == 200 and RS.encode() not in body and NG.encode() in body


@pytest.mark.parametrize(("path", "query"), [
    ("/api/v1/cases", "open=1"), ("/api/v1/cases", "limit=0"), ("/api/v1/cases", "limit=1001"),
    ("/api/v1/cases", "offset=10000001"), ("/api/v1/cases", "limit=050"), ("/api/v1/cases", "status=open"),
    ("/api/v1/cases", "limit=5&limit=6"), ("/api/v1/cases", "sort=id"), ("/api/v1/cases", "tenant="),
    ("/api/v1/cases/0", ""), ("/api/v1/cases/2147483648", ""), ("/api/v1/cases/01", ""),
    ("/api/v1/cases/1/alerts", ""), ("/api/v1/cases/", ""), ("/api/v1/cases/1", "alerts_limit=-1"),
    ("/api/v1/cases/1", "events_offset=x"), ("/api/v1/alerts", ""), ("/api/v1/cases/999999", ""),
])
def test_what_hot_reads_cannot_decide_goes_to_the_application(soc: SocApi, make_alert: MakeAlert, app: FastAPI,
                                                               path: str, query: str) -> None:
    _world(soc, make_alert)
    assert soc.client.get("/api/v1/cases", headers=soc.analyst).status_code == 200  # the key is cached
    assert _hot(app, path, query, soc.analyst)[0] == 599
    # and the application answers it as it always did (never a server error)
    assert soc.client.get(f"{path}?{query}", headers=soc.analyst).status_code < 500


def test_keys_hot_reads_do_not_know_go_to_the_application(soc: SocApi, make_alert: MakeAlert,
                                                           app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    rs_viewer = soc.headers(Role.TENANT_VIEWER, tenant=RS)
    # Not verified by this process yet: read as the application reads it, and answered in the member's scope.
    status, body, _ = _hot(app, "/api/v1/cases", "", rs_viewer)
    assert status == 200 and body == soc.client.get("/api/v1/cases", headers=rs_viewer).content
    assert {case["tenant_id"] for case in orjson.loads(body)} == {RS}
    service = soc.headers(Role.SERVICE)
    assert _hot(app, "/api/v1/cases", "", service)[0] == 599  # may not read cases: the application refuses it
    assert soc.client.get("/api/v1/cases", headers=service).status_code == 403
    assert _hot(app, "/api/v1/cases", "", service)[0] == 599  # and so once its key is cached
    assert _hot(app, "/api/v1/cases", "", {"Authorization": "Bearer nonsense"})[0] == 599
    assert _hot(app, "/api/v1/cases", "", {})[0] == 599
    ng_viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG, name="ng-viewer")
    with app.state.session_factory() as session:  # disabled, by another process: this one never saw the key
        session.execute(update(User).where(User.id == "ng-viewer").values(disabled_at=utcnow()))
        session.commit()
    assert _hot(app, "/api/v1/cases", "", ng_viewer)[0] == 599
    assert soc.client.get("/api/v1/cases", headers=ng_viewer).status_code == 401
    assert _hot(app, "/api/v1/cases", "", rs_viewer)[0] == 200
    # Another tenant's case is not found for the member: passed on, and the application answers 404.
    assert _hot(app, f"/api/v1/cases/{ids[0]}", "", rs_viewer)[0] == 599
    assert soc.client.get(f"/api/v1/cases/{ids[0]}", headers=rs_viewer).status_code == 404
    # The same key as X-API-Key is the same caller.
    secret = rs_viewer["Authorization"].removeprefix("Bearer ")
    assert _hot(app, f"/api/v1/cases/{ids[1]}", "", {"X-API-Key": secret})[0] == 200


def test_a_hot_change_answers_as_the_endpoint_does(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    soc.headers(Role.SOC_ANALYST, name="ana")
    responder = soc.headers(Role.TENANT_RESPONDER, tenant=NG)
    read = soc.client.get(f"/api/v1/cases/{ids[0]}", headers=soc.analyst)  # verifies the key: cached
    assert soc.client.get(f"/api/v1/cases/{ids[0]}", headers=responder).status_code == 200
    status, body, sent = _change(app, ids[0], {"assignee": "ana", "status": "in_progress"}, soc.analyst,
                                 **{"If-Match": read.headers["etag"]})
    assert status == 200, body
    after = soc.client.get(f"/api/v1/cases/{ids[0]}", headers=soc.analyst)
    assert orjson.loads(body) == orjson.loads(after.content)
    assert body == after.content and sent["etag"] == after.headers["etag"] == f'"{read.json()["version"] + 1}"'
    assert sent["content-type"] == "application/json"
    # Refusals are the application's: a stale If-Match, another tenant's case, a transition, an unknown assignee.
    refusals: list[tuple[int, dict[str, Any], dict[str, str], dict[str, str]]] = [
        (ids[0], {"assignee": None}, soc.analyst, {"If-Match": read.headers["etag"]}),
        (ids[1], {"assignee": None}, responder, {}),
        (ids[0], {"status": "new"}, soc.analyst, {}),
        (ids[0], {"assignee": "nobody"}, soc.analyst, {}),
    ]
    for case_id, change, headers, extra in refusals:
        status, body, _ = _change(app, case_id, change, headers, **extra)
        answer = soc.client.patch(f"/api/v1/cases/{case_id}", json=change, headers={**headers, **extra})
        assert (status, body) == (answer.status_code, answer.content), change
        assert status in (404, 409, 412, 422), change
    assert soc.case(ids[0])["version"] == read.json()["version"] + 1
    verified = soc.client.get("/api/v1/audit/verify", headers=soc.admin).json()
    assert verified["ok"] is True, verified


@pytest.mark.parametrize(("body", "extra"), [
    (b'{"assignee": "ana", "colour": "red"}', {}),  # not a field: FastAPI's 422
    (b'{"status": "closed"}', {}),  # closing needs a resolution
    (b'{"assignee": "ana"', {}),  # not JSON
    (b"", {}),
    (b'["assignee"]', {}),
    (b'{"assignee": "ana"}', {"Content-Type": "text/plain"}),
    (b'{"assignee": "ana"}', {"If-Match": "seven"}),
    (b'{"assignee": "ana"}', {"If-Match": '"' + "1" * 300 + '"'}),
])
def test_what_a_hot_change_cannot_decide_goes_to_the_application_with_its_body(
        soc: SocApi, make_alert: MakeAlert, app: FastAPI, body: bytes, extra: dict[str, str]) -> None:
    ids = _world(soc, make_alert)
    soc.headers(Role.SOC_ANALYST, name="ana")
    version = soc.case(ids[0])["version"]  # and the key is cached
    headers = {**soc.analyst, "Content-Type": "application/json", "Content-Length": str(len(body)), **extra}
    recorder = Recorder()
    status, _, _ = _hot(app, f"/api/v1/cases/{ids[0]}", "", headers, method="PATCH", body=body, recorder=recorder)
    assert status == 599 and recorder.bodies == [body]
    answer = soc.client.patch(f"/api/v1/cases/{ids[0]}", content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert soc.case(ids[0])["version"] == version


def test_a_hot_change_leaves_other_callers_and_requests_to_the_application(
        soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    ids = _world(soc, make_alert)
    soc.headers(Role.SOC_ANALYST, name="ana")
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    assert soc.client.get("/api/v1/cases", headers=viewer).status_code == 200  # cached, may not change cases
    passed = [
        _change(app, ids[0], {"assignee": "ana"}, viewer),
        _change(app, ids[0], {"assignee": "ana"}, {"Authorization": "Bearer nonsense"}),
        _change(app, ids[0], {"assignee": "ana"}, {}),
        _hot(app, f"/api/v1/cases/{ids[0]}", "x=1", {**soc.analyst, "Content-Type": "application/json",
                                                      "Content-Length": "2"}, method="PATCH", body=b"{}"),
        _hot(app, f"/api/v1/cases/{ids[0]}", "", {**soc.analyst, "Content-Type": "application/json"},
             method="PATCH", body=b"{}"),  # no Content-Length: a streamed body
        _change(app, 0, {"assignee": "ana"}, soc.analyst),
        _hot(app, "/api/v1/cases", "", {**soc.analyst, "Content-Type": "application/json", "Content-Length": "2"},
             method="PATCH", body=b"{}"),
    ]
    assert [status for status, _, _ in passed] == [599] * len(passed)
    assert soc.client.patch(f"/api/v1/cases/{ids[0]}", json={"assignee": "ana"}, headers=viewer).status_code == 403
    # A key this process has not verified is read as the application reads it, and the change made.
    responder = soc.headers(Role.TENANT_RESPONDER, tenant=NG)
    status, body, _ = _change(app, ids[0], {"assignee": "ana"}, responder)
    assert status == 200 and orjson.loads(body)["assignee"] == "ana"
