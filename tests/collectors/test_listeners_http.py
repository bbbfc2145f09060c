"""The HTTP intake over a real socket (uvicorn in the service's loop): statuses, limits, attribution."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citysoc.store import ParquetEventStore
from collectors.drain import Drainer
from collectors.listeners.config import Limits
from tests.collectors.intake_helpers import (
    HOSPITAL_TOKEN,
    SCHOOL_TOKEN,
    Running,
    fill_until_full,
    running,
)
from tests.store.lake_helpers import stored_ids


def trail(event_id: str, account: str = "111122223333") -> dict[str, object]:
    return {"eventVersion": "1.08", "eventTime": "2026-01-05T10:00:00Z", "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin", "eventID": event_id, "recipientAccountId": account,
            "userIdentity": {"type": "IAMUser", "accountId": account, "userName": "alice"},
            "sourceIPAddress": "198.51.100.7", "awsRegion": "eu-west-2"}


def ndjson(*records: dict[str, object]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Running]:
    limits = Limits(http_max_body_bytes=1024 * 1024, http_max_record_bytes=64 * 1024, http_max_records=1000)
    with running(tmp_path, limits=limits, max_spool_bytes=8 * 1024 * 1024, kinds=("http",)) as service:
        yield service


def post(http: httpx.Client, body: bytes, *, token: str | None = HOSPITAL_TOKEN, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
    return http.post("/v1/events", content=body, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_ndjson_is_accepted_only_once_durable_under_the_tokens_tenant(intake: Running, http: httpx.Client) -> None:
    body = ndjson(trail("ndjson-probe-1"), trail("ndjson-probe-2")) + b"{broken json line, ndjson-probe-3}\n"
    response = post(http, body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    records = intake.records("ndjson-probe")  # durable before the answer: no waiting here
    assert {(tenant, source) for tenant, source, _ in records} == {("northgate-hospital", "aws.cloudtrail")}
    assert [r.payload for _, _, r in records] == body.rstrip(b"\n").split(b"\n")  # byte for byte, bad line too


def test_gzip_and_json_arrays_are_read(intake: Running, http: httpx.Client) -> None:
    array = json.dumps([trail("array-probe-1"), trail("array-probe-2")]).encode()
    assert post(http, array).json()["accepted"] == 2
    zipped = post(http, gzip.compress(ndjson(trail("gzip-probe-1"))), headers={"Content-Encoding": "gzip"})
    assert zipped.status_code == 200, zipped.text
    assert len(intake.records("array-probe")) == 2 and len(intake.records("gzip-probe")) == 1


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("a-guess", 401), ("", 401)])
def test_a_missing_or_unknown_token_is_401(intake: Running, http: httpx.Client, token: str | None,
                                           status: int) -> None:
    response = post(http, ndjson(trail("nobody-probe")), token=token)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"]
    assert intake.records("nobody-probe") == []


@pytest.mark.parametrize("body", [b"this is not json\nnor this", b"[{\"unterminated\": ", b"", b"\n\n"])
def test_a_body_that_is_not_events_is_400_with_advice(intake: Running, http: httpx.Client, body: bytes) -> None:
    response = post(http, body)
    assert response.status_code == 400
    assert "NDJSON" in response.json()["detail"] or "array" in response.json()["detail"]


def test_broken_gzip_and_unknown_encodings_are_refused(http: httpx.Client) -> None:
    truncated = gzip.compress(ndjson(trail("cut-gzip")))[:-12]
    assert post(http, truncated, headers={"Content-Encoding": "gzip"}).status_code == 400
    assert post(http, b"x", headers={"Content-Encoding": "br"}).status_code == 415


def test_bodies_over_the_limit_are_413_including_a_gzip_bomb(intake: Running, http: httpx.Client) -> None:
    big = ndjson(*[trail(f"big-{n}-" + "x" * 2000) for n in range(600)])  # 1.4 MB over a 1 MiB limit
    assert post(http, big).status_code == 413
    bomb = gzip.compress(b'{"a": "' + b"0" * (50 * 1024 * 1024) + b'"}\n')  # 50 KB that inflates to 50 MB
    response = post(http, bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompressed" in response.json()["detail"]
    one_record = ndjson({"eventID": "huge-record", "blob": "y" * 100_000})
    assert post(http, one_record).status_code == 413
    many = post(http, b"{}\n" * 1001)  # tiny records cost more in memory than their bytes: counted too
    assert many.status_code == 413 and "1001 records" in many.json()["detail"]
    assert intake.records("big-") == [] and intake.records("huge-record") == []


def test_another_tenants_cloud_account_is_403_and_nothing_is_stored(intake: Running, http: httpx.Client) -> None:
    mixed = ndjson(trail("own-account-probe"), trail("foreign-account-probe", account="999988887777"))
    response = post(http, mixed)
    assert response.status_code == 403
    assert "999988887777 is not registered for northgate-hospital" in response.json()["detail"]
    assert intake.records("account-probe") == []


def test_the_parser_comes_from_the_source_or_from_the_request_when_the_source_fixes_none(
        intake: Running, http: httpx.Client) -> None:
    assert post(http, ndjson(trail("p1")), params={"source": "syslog"}).status_code == 400  # hospital fixes it
    assert post(http, ndjson(trail("p2")), token=SCHOOL_TOKEN).status_code == 400  # school must say
    assert post(http, ndjson(trail("p3")), token=SCHOOL_TOKEN, params={"source": "no-such"}).status_code == 400
    # the school's source has no cloud account: CloudTrail naming one is refused, not filed
    assert post(http, ndjson(trail("p4")), token=SCHOOL_TOKEN, params={"source": "cloudtrail"}).status_code == 403
    json_lines = ndjson({"message": "school-json-probe"})
    accepted = post(http, json_lines, token=SCHOOL_TOKEN, headers={"X-Soc-Source": "syslog"})
    assert accepted.status_code == 200, accepted.text
    assert [(t, s) for t, s, _ in intake.records("school-json-probe")] == [("harbour-school", "syslog")]


def test_a_full_spool_is_429_with_retry_after(intake: Running, http: httpx.Client) -> None:
    fill_until_full(intake.spool)
    response = post(http, ndjson(trail("full-probe")))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert intake.records("full-probe") == []


def test_okta_event_hook_verification_answers_the_challenge_only_to_a_known_token(http: httpx.Client) -> None:
    challenge = {"X-Okta-Verification-Challenge": "hv3m7-challenge"}
    verified = http.get("/v1/events", headers={"Authorization": f"Bearer {SCHOOL_TOKEN}", **challenge})
    assert verified.status_code == 200 and verified.json() == {"verification": "hv3m7-challenge"}
    assert http.get("/v1/events", headers={"Authorization": "Bearer stranger", **challenge}).status_code == 401
    assert http.get("/v1/events", headers=challenge).status_code == 401
    assert http.get("/v1/events", headers={"Authorization": f"Bearer {SCHOOL_TOKEN}"}).status_code == 405


def test_a_pubsub_push_carries_its_token_in_the_endpoint_url(intake: Running, http: httpx.Client) -> None:
    entry = {"insertId": "push-probe-1", "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity"}
    push = {"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(), "messageId": "1",
                        "publishTime": "2026-12-01T10:00:00Z", "attributes": {}},
            "subscription": "projects/p/subscriptions/citysoc-push"}
    body = json.dumps(push).encode()
    assert http.post("/v1/events", content=body, params={"token": "stranger"}).status_code == 401
    answer = http.post("/v1/events", content=body, params={"token": SCHOOL_TOKEN, "source": "gcp.audit"})
    assert answer.status_code == 200, answer.text
    [(tenant, source, record)] = intake.records("citysoc-push")
    assert (tenant, source) == ("harbour-school", "gcp.audit") and json.loads(record.payload) == push


def test_okta_hook_deliveries_and_pubsub_pushes_are_stored_under_the_providers_ids(
        intake: Running, http: httpx.Client, tmp_path: Path) -> None:
    hook = {"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
            "eventId": "delivery-1", "eventTime": "2026-12-01T10:00:01.000Z", "data": {"events": [
                {"uuid": f"hook-uuid-{n}", "published": "2026-12-01T10:00:00.000Z", "eventType": "user.session.start",
                 "version": "0", "severity": "INFO", "displayMessage": "User login to Okta",
                 "actor": {"id": "00u1", "type": "User", "alternateId": "alice@example.org"},
                 "client": {"ipAddress": "198.51.100.7"}, "outcome": {"result": "FAILURE"}} for n in (1, 2)]}}
    delivered = http.post("/v1/events", content=json.dumps(hook).encode(),
                          headers={"Authorization": f"Bearer {SCHOOL_TOKEN}"}, params={"source": "okta.system"})
    assert delivered.status_code == 200, delivered.text
    entry = {"insertId": "push-insert-1", "logName": "projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity",
             "timestamp": "2026-12-01T10:00:00.123456Z", "severity": "NOTICE",
             "resource": {"type": "service_account", "labels": {"project_id": "acme-prod"}},
             "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                              "serviceName": "iam.googleapis.com",
                              "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                              "authenticationInfo": {"principalEmail": "bob@example.org"},
                              "requestMetadata": {"callerIp": "203.0.113.9"}}}
    push = {"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(), "messageId": "9",
                        "publishTime": "2026-12-01T10:00:01Z"}, "subscription": "projects/acme-prod/subscriptions/soc"}
    pushed = http.post("/v1/events", content=json.dumps(push).encode(),
                       params={"token": SCHOOL_TOKEN, "source": "gcp.audit"})
    assert pushed.status_code == 200, pushed.text
    store = ParquetEventStore(tmp_path / "events")
    Drainer(intake.spool, store, intake.dead_letters).run_once()
    assert list(intake.dead_letters.list()) == []
    assert store.stored(tenant="harbour-school", dataset="okta.system") == 2
    assert store.stored(tenant="harbour-school", dataset="gcp.audit") == 1
    assert sorted(stored_ids(store.events_dir)) == ["hook-uuid-1", "hook-uuid-2", "push-insert-1"]
