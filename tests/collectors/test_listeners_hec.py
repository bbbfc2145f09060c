"""The HTTP intake's Splunk HEC routes over a real socket, as GitHub's audit log streaming ("Splunk" stream)
and other HEC clients use them: stacked JSON envelopes (HEC's documented event format), `Authorization:
Splunk <token>`, HEC's documented answer bodies and statuses, the health endpoint, and GitHub audit events
stored under the token's tenant with their `_document_id` (a repeated delivery is stored once)."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from citysoc.store import ParquetEventStore
from collectors.attribution import SourceAccess, SourceRef, token_digest
from collectors.drain import Drainer
from collectors.listeners.config import Limits
from tests.collectors.intake_helpers import HOSPITAL_TOKEN, SCHOOL_TOKEN, Running, fill_until_full, running
from tests.store.lake_helpers import stored_ids

GITHUB_TOKEN = "9c2b1c9e-1f0e-4d6b-a7a5-3f0e8f3b7c11"  # HEC tokens are GUIDs; CitySOC's are any string
GITHUB_STREAM = SourceRef(12, "riverside-council", "github stream", "http", "github.audit")


def audit_event(number: int) -> dict[str, Any]:
    return {"@timestamp": 1764583200000 + number, "_document_id": f"hec-doc-{number:03d}",
            "action": "protected_branch.destroy", "actor": "octocat", "actor_id": 583231, "org": "riverside-council",
            "repo": "riverside-council/site", "created_at": 1764583200000 + number, "operation_type": "remove",
            "actor_location": {"country_code": "GB"}, "user_agent": "Mozilla/5.0"}


def envelopes(*events: Any, **meta: Any) -> bytes:
    """HEC's batch: event objects stacked one after the other, no array, no commas."""
    return b"\n".join(json.dumps({"time": 1764583200.5, "host": "github.com", "source": "github",
                                  "sourcetype": "github:enterprise:audit", **meta, "event": event}).encode()
                      for event in events)


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Running]:
    stream = SourceAccess(GITHUB_STREAM, frozenset({"http"}), token_sha256=token_digest(GITHUB_TOKEN))
    limits = Limits(http_max_body_bytes=256 * 1024, http_max_record_bytes=16 * 1024, http_max_records=100)
    with running(tmp_path, kinds=("http",), limits=limits, max_spool_bytes=4 * 1024 * 1024,
                 more_sources=(stream,)) as service:
        yield service


def send(http: httpx.Client, body: bytes, *, token: str | None = GITHUB_TOKEN, path: str = "/services/collector/event",
         **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Splunk {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return http.post(path, content=body, headers=headers, **kwargs)


def test_github_audit_events_are_stored_under_the_tokens_tenant_once(
        intake: Running, http: httpx.Client, tmp_path: Path) -> None:
    answer = send(http, envelopes(*(audit_event(n) for n in range(3))))
    assert (answer.status_code, answer.json()) == (200, {"text": "Success", "code": 0})
    # GitHub delivers at least once: the same events again, gzip, to the endpoint GitHub validates
    again = send(http, gzip.compress(envelopes(*(audit_event(n) for n in range(3)))), path="/services/collector",
                 headers={"Content-Encoding": "gzip"})
    assert again.json() == {"text": "Success", "code": 0}
    [(tenant, source, record)] = intake.records("hec-doc-000")[:1]
    assert (tenant, source) == ("riverside-council", "github.audit") and json.loads(record.payload) == audit_event(0)
    store = ParquetEventStore(tmp_path / "events")
    Drainer(intake.spool, store, intake.dead_letters).run_once()
    assert list(intake.dead_letters.list()) == []
    assert sorted(stored_ids(store.events_dir)) == [f"hec-doc-{n:03d}" for n in range(3)]
    assert store.stored(tenant="riverside-council", dataset="github.audit") == 3


@pytest.mark.parametrize(("headers", "params", "status", "answer"), [
    ({}, {}, 401, {"text": "Token is required", "code": 2}),
    ({"Authorization": "Splunk not-a-token"}, {}, 403, {"text": "Invalid token", "code": 4}),
    ({"Authorization": "Token abc"}, {}, 401, {"text": "Invalid authorization", "code": 3}),
    ({}, {"token": GITHUB_TOKEN}, 400, {"text": "Query string authorization is not enabled", "code": 16}),
])
def test_authentication_answers_are_hecs(http: httpx.Client, headers: dict[str, str], params: dict[str, str],
                                         status: int, answer: dict[str, Any]) -> None:
    response = http.post("/services/collector/event", content=envelopes(audit_event(1)), headers=headers,
                        params=params)
    assert response.status_code == status
    assert {key: response.json()[key] for key in ("text", "code")} == answer


def test_basic_authentication_carries_the_token_as_its_password(intake: Running, http: httpx.Client) -> None:
    basic = base64.b64encode(f"x:{GITHUB_TOKEN}".encode()).decode()
    answer = send(http, envelopes(audit_event(7)), token=None, path="/services/collector/event/1.0",
                  headers={"Authorization": f"Basic {basic}"})
    assert answer.json() == {"text": "Success", "code": 0} and intake.records("hec-doc-007")


@pytest.mark.parametrize(("body", "status", "answer"), [
    (b"", 400, {"text": "No data", "code": 5}),
    (b"  \n", 400, {"text": "No data", "code": 5}),
    (b'{"event": {"a": 1}} {"event": ', 400, {"text": "Invalid data format", "code": 6}),
    (b'[{"event": {"a": 1}}]', 400, {"text": "Invalid data format", "code": 6}),
    (b'{"time": 1764583200, "host": "github.com"}', 400, {"text": "Event field is required", "code": 12}),
    (b'{"event": ""}', 400, {"text": "Event field cannot be blank", "code": 13}),
])
def test_bodies_that_are_not_hec_events_get_hecs_answer_and_nothing_is_kept(
        intake: Running, http: httpx.Client, body: bytes, status: int, answer: dict[str, Any]) -> None:
    response = send(http, body)
    assert response.status_code == status
    assert {key: response.json()[key] for key in ("text", "code")} == answer
    assert list(intake.spool.pending()) == []


def test_a_source_without_a_parser_must_say_which(intake: Running, http: httpx.Client) -> None:
    refused = send(http, envelopes(audit_event(3)), token=SCHOOL_TOKEN)  # the school's json push fixes no parser
    assert refused.status_code == 400 and refused.json()["code"] == 6 and "say which" in refused.json()["detail"]
    taken = send(http, envelopes(audit_event(3)), token=SCHOOL_TOKEN, params={"source": "github.audit"})
    assert taken.json() == {"text": "Success", "code": 0}
    cloudtrail = send(http, envelopes({"eventID": "x", "recipientAccountId": "999999999999"}), token=HOSPITAL_TOKEN)
    assert cloudtrail.status_code == 400 and "999999999999 is not registered" in cloudtrail.json()["detail"]


def test_a_full_spool_is_server_is_busy_and_health_is_hecs(intake: Running, http: httpx.Client) -> None:
    for path in ("/services/collector/health", "/services/collector/health/1.0"):
        health = http.get(path)
        assert (health.status_code, health.json()) == (200, {"text": "HEC is healthy", "code": 17})
    fill_until_full(intake.spool)
    busy = send(http, envelopes(audit_event(9)))
    assert busy.status_code == 503 and busy.json()["code"] == 9 and busy.json()["text"] == "Server is busy"
    assert busy.headers["Retry-After"]


def test_bodies_over_the_limits_are_refused(http: httpx.Client) -> None:
    big_event = {**audit_event(1), "padding": "x" * 20_000}
    assert send(http, envelopes(big_event)).status_code == 413
    assert send(http, envelopes(*(audit_event(n) for n in range(101)))).status_code == 413
    bomb = gzip.compress(b" " * (2 * 1024 * 1024))
    assert send(http, bomb, headers={"Content-Encoding": "gzip"}).status_code == 413
