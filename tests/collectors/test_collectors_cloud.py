"""Cloud and identity audit logs (`collectors.cloud`) on the native samples of `../shared/corpora/cloud`: the
ECS fields Elastic's integrations set, the envelopes (Event Hub, event hooks, Pub/Sub), what is refused and
why, redaction, the per-record API pulls use, and `soc ingest --source <dataset>`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from citysoc.deadletter import DeadLetter
from citysoc.schema import to_row
from collectors import ParsedEvent, ParserOptions, RawRecord, get_parser
from collectors.cloud import CLOUD_PARSERS, normalise_native, unwrap_native
from collectors.errors import UnparsableRecordError
from collectors.redact import REDACTED
from tests.cli_runner import run_soc

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def cloud(corpora: Path) -> Path:
    path = corpora / "cloud"
    if not path.is_dir():
        pytest.skip(f"cloud audit samples not found at {path}")
    return path


def parse(source: str, path: Path) -> tuple[list[ParsedEvent], list[DeadLetter]]:
    events: list[ParsedEvent] = []
    letters: list[DeadLetter] = []
    for item in get_parser(source)(ParserOptions(now=NOW)).parse(path, tenant="council", source=source):
        (letters if isinstance(item, DeadLetter) else events).append(item)  # type: ignore[arg-type]
    for event in events:
        to_row(event.doc)  # every field is in the event schema
    return events, letters


def one(source: str, path: Path) -> dict[str, Any]:
    events, letters = parse(source, path)
    assert letters == [] and len(events) == 1, letters
    return events[0].doc


def test_okta_log_events_and_event_hook_map_like_elastic(cloud: Path) -> None:
    docs = cloud / "okta" / "okta-developer-docs" / "derived"
    events, letters = parse("okta.system", docs / "rl-system-log-events.block01.L103-L210.json")
    assert letters == [] and len(events) == 1
    doc = events[0].doc
    assert doc["event"]["dataset"] == "okta.system" and doc["event"]["module"] == "okta"
    assert doc["user"]["email"] == "john.smith@example.com" and doc["user"]["name"] == "john.smith"
    assert doc["user"]["id"] == "00uw8nGF9OiREtZyr0g3" and doc["user"]["full_name"] == "John Smith"
    assert doc["source"]["ip"] == "127.0.0.1"
    okta = json.loads(doc["okta"])
    assert doc["event"]["id"] == okta["uuid"] and doc["event"]["action"] == okta["event_type"]
    assert "debug_context" in okta and "user_agent" in okta["client"]  # Elastic's snake_case layout
    hook = one("okta.system", docs / "event-hooks.block01.L165-L288.json")
    assert hook["event"]["id"] == "f1d0b993-cc19-11ed-a688-db22c99ef6c4"
    assert hook["event"]["action"] == "user.session.start" and hook["event"]["category"] == ["authentication"]
    assert hook["event"]["outcome"] == "success" and hook["source"]["ip"] == "142.126.158.61"
    assert hook["@timestamp"] == datetime(2023, 3, 26, 21, 5, 32, 159000, tzinfo=UTC)


def test_m365_content_blob_is_three_events_with_the_failed_logon_a_failure(cloud: Path) -> None:
    path = (cloud / "m365" / "office-365-management-api" / "derived"
            / "office-365-management-activity-api-reference.content-blob-example.L388-L479.json")
    events, letters = parse("o365.audit", path)
    assert letters == [] and len(events) == 3
    failed, succeeded, added = (event.doc for event in events)
    assert failed["event"]["id"] == "80c76bd2-9d81-4c57-a97a-accfc3443dca"
    assert failed["event"]["action"] == "PasswordLogonInitialAuthUsingPassword"
    assert (failed["event"]["outcome"], succeeded["event"]["outcome"]) == ("failure", "success")
    assert failed["event"]["provider"] == "AzureActiveDirectory" and failed["event"]["code"] == "9"
    assert failed["user"]["email"] == "admin@contoso.onmicrosoft.com" and failed["user"]["domain"] == (
        "contoso.onmicrosoft.com")
    assert failed["source"]["ip"] == "134.170.188.221"
    assert failed["cloud"]["account"]["id"] == "41463f53-8812-40f4-890f-865bf6e35190"
    assert failed["@timestamp"] == datetime(2015, 6, 29, 20, 3, 19, tzinfo=UTC)
    assert json.loads(failed["o365"]["audit"])["LoginStatus"] == -2147217390
    assert added["event"]["action"] == "Add User."


def test_m365_records_with_lower_cased_keys_are_refused_with_the_reason(cloud: Path) -> None:
    path = cloud / "m365" / "panther-analysis" / "derived" / "panther_microsoft365_audit.records.ndjson"
    events, letters = parse("o365.audit", path)
    assert len(events) + len(letters) == 19
    assert letters and all("lower-cased" in letter.reason for letter in letters)


def test_gcp_exports_and_pubsub_messages_give_the_same_events(cloud: Path, tmp_path: Path) -> None:
    export = cloud / "gcp-audit" / "plaso" / "test_data" / "jsonl" / "gcp_logging.jsonl"
    events, letters = parse("gcp.audit", export)
    assert len(events) == 9
    assert sorted(letter.reason.split(":")[0] for letter in letters) == [
        "a LogEntry with a jsonPayload, not an audit log", "a LogEntry with a textPayload, not an audit log"]
    first = events[0].doc
    assert first["event"]["id"] == "iv9wx9d16l2" and first["event"]["action"] == "beta.compute.networks.insert"
    assert first["event"]["provider"] == "compute.googleapis.com" and first["event"]["outcome"] == "success"
    assert first["user"]["email"] == "fakeemailxyz@gmail.com" and first["source"]["ip"] == "1.1.1.1"
    assert first["cloud"]["project"]["id"] == first["cloud"]["account"]["id"] == "fake-project"
    assert first["gcp"]["audit"]["resource_name"] == "projects/fake-project/global/networks/test"
    assert first["@timestamp"] == datetime(2021, 10, 19, 2, 57, 47, 339377, tzinfo=UTC)

    entry = json.loads((cloud / "gcp-audit" / "google-cloudevents" / "testdata" / "google" / "events" / "cloud"
                        / "audit" / "v1" / "LogEntryData-pubsubCreateTopic.json").read_text())
    data = base64.b64encode(orjson.dumps(entry)).decode()
    push = {"message": {"data": data, "messageId": "1", "attributes": {}}, "subscription": "projects/p/subscriptions/s"}
    pulled = {"receivedMessages": [{"ackId": "a", "message": {"data": data, "messageId": "1"}}]}
    (tmp_path / "entry.json").write_bytes(orjson.dumps(entry))
    (tmp_path / "push.json").write_bytes(orjson.dumps(push))
    (tmp_path / "pull.json").write_bytes(orjson.dumps(pulled))
    (tmp_path / "bad.json").write_bytes(orjson.dumps({"message": {"data": "%%%", "messageId": "2"}}))
    plain = one("gcp.audit", tmp_path / "entry.json")
    for name in ("push.json", "pull.json"):
        doc = one("gcp.audit", tmp_path / name)
        assert doc == plain, name
    assert plain["event"]["id"] == "9frck8cf9j"
    assert plain["user"]["email"] == "robot@test-project.iam.gserviceaccount.com"
    _, letters = parse("gcp.audit", tmp_path / "bad.json")
    assert [letter.reason for letter in letters] == ["a Pub/Sub message whose `data` is not base64"]


def test_github_audit_events_map_like_elastic(tmp_path: Path) -> None:
    record = {"@timestamp": 1621305118553, "_document_id": "Vq6yOo-xTKfHwFSa2zBK4w",
              "action": "protected_branch.destroy", "actor": "cat", "actor_id": 21, "actor_ip": "192.0.2.10",
              "user": "dog", "org": "my-org",
              "repo": "my-org/my-repo", "created_at": 1621305118553}
    (tmp_path / "audit.jsonl").write_bytes(orjson.dumps(record) + b"\n" + orjson.dumps({"action": "x"}) + b"\n")
    events, letters = parse("github.audit", tmp_path / "audit.jsonl")
    doc = events[0].doc
    assert doc["event"]["id"] == "Vq6yOo-xTKfHwFSa2zBK4w" and doc["event"]["action"] == "protected_branch.destroy"
    assert doc["user"] == {"name": "cat", "id": "21", "target": {"name": "dog"}}
    assert doc["source"]["ip"] == "192.0.2.10"
    assert doc["@timestamp"] == datetime(2021, 5, 18, 2, 31, 58, 553000, tzinfo=UTC)
    assert json.loads(doc["github"])["repo"] == "my-org/my-repo"
    assert [letter.reason.split(":")[0] for letter in letters] == ["record lacks @timestamp or created_at"]


def test_azure_event_hub_bodies_route_each_record_to_its_dataset(cloud: Path, tmp_path: Path) -> None:
    activity = one("azure.activitylogs", cloud / "azure-activity" / "opentelemetry-collector-contrib" / "pkg"
                   / "translator" / "azurelogs" / "testdata" / "administrative" / "valid_1.json")
    assert activity["event"]["dataset"] == "azure.activitylogs"
    assert activity["azure"]["activitylogs"]["operation_name"] == "MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE"
    assert activity["azure"]["resource"]["provider"].upper() == "MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS"
    assert "id" not in activity["event"] or activity["event"]["id"] != activity["azure"]["correlation_id"]
    signin_doc = json.loads((cloud / "entra-signin" / "entra-docs" / "derived"
                             / "reference-azure-monitor-sign-ins-log-schema.example.json").read_text())
    audit_doc = json.loads((cloud / "entra-audit" / "alertlogic-ehub-collector" / "derived"
                            / "mock.js.AUDIT_LOG_RECORD.L135-L169.json").read_text())
    body = tmp_path / "eventhub.json"
    body.write_bytes(orjson.dumps({"records": [signin_doc, audit_doc, {"time": "2024-01-01T00:00:00Z",
                                                                      "category": "kube-audit"}]}))
    events, letters = parse("azure.signinlogs", body)
    assert [event.dataset for event in events] == ["azure.signinlogs", "azure.auditlogs"]
    signin, audit = (event.doc for event in events)
    assert signin["event"]["id"] == "0231f922-93fa-4005-bb11-b344eca03c01"
    assert signin["event"]["outcome"] == "failure" and signin["azure"]["signinlogs"]["result_type"] == "50140"
    assert signin["user"]["full_name"] == "Timothy Perkins"
    assert json.loads(signin["azure"]["signinlogs"]["properties"])["conditional_access_status"] == "notApplied"
    assert audit["event"]["id"] == "Directory_VNXV4_28148892" and audit["event"]["action"] == "Update policy"
    assert audit["azure"]["correlation_id"] == "192298c1-0994-4dd6-b05a-a6c5984c31cb"
    assert len(letters) == 1 and letters[0].origin.endswith(":record[2]")
    assert "'kube-audit' is a resource log of another service" in letters[0].reason


def test_graph_directory_audit_download_maps_as_an_audit_record(cloud: Path, tmp_path: Path) -> None:
    text = (cloud / "entra-audit" / "entra-docs" / "derived" / "reference-audit-logs-schema.example.txt").read_text()
    (tmp_path / "audit.json").write_text(text.rstrip().removesuffix(","))  # the docs block ends with a stray comma
    doc = one("azure.auditlogs", tmp_path / "audit.json")
    assert doc["event"]["dataset"] == "azure.auditlogs" and doc["event"]["id"]
    assert doc["event"]["action"] == json.loads(doc["event"]["original"])["activityDisplayName"]


def test_secrets_are_redacted_in_events_and_dead_letters(tmp_path: Path) -> None:
    record = {"uuid": "u1", "published": "2024-01-01T00:00:00Z", "eventType": "app.oauth2.token.grant",
              "debugContext": {"debugData": {"clientSecret": "hunter2", "password": "pw"}}}
    broken = {"published": "2024-01-01T00:00:00Z", "debugContext": {"accessToken": "tok-123"}}
    (tmp_path / "okta.json").write_bytes(orjson.dumps([record, broken]))
    events, letters = parse("okta.system", tmp_path / "okta.json")
    stored = events[0].doc["event"]["original"] + events[0].doc["okta"]
    assert "hunter2" not in stored and "pw\"" not in stored and REDACTED in stored
    assert len(letters) == 1 and "tok-123" not in letters[0].raw and REDACTED in letters[0].raw


def test_native_records_map_without_files_for_pulls() -> None:
    record = {"insertId": "abc", "timestamp": "2024-05-01T10:00:00.123456789Z",
              "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                               "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                               "serviceName": "iam.googleapis.com", "status": {"code": 7, "message": "denied"}}}
    doc = normalise_native("gcp.audit", record, tenant="council")
    assert doc["event"]["id"] == "abc" and doc["event"]["outcome"] == "failure"
    assert doc["organization"]["id"] == "council" and doc["gcp"]["audit"]["status"]["code"] == 7
    assert doc["@timestamp"] == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    with pytest.raises(UnparsableRecordError, match="textPayload, not an audit log"):
        normalise_native("gcp.audit", {"insertId": "x", "textPayload": "hi"}, tenant="council")
    hook = {"eventType": "com.okta.event_hook", "data": {"events": [{"uuid": "1"}, {"uuid": "2"}]}}
    assert unwrap_native("okta.system", hook) == [{"uuid": "1"}, {"uuid": "2"}]
    assert unwrap_native("okta.system", {"uuid": "1"}) == [{"uuid": "1"}]
    # a batch handed over as records: the same tables and dead letters as a file
    batch = [RawRecord(orjson.dumps(record), "pull #1", NOW), RawRecord(b'{"insertId": 1}', "pull #2", NOW)]
    parsed = get_parser("gcp.audit")().parse_records(batch, tenant="council", source="gcp.audit")
    assert parsed.events == 1 and [letter.origin for letter in parsed.dead] == ["pull #2"]


def test_every_cloud_parser_refuses_what_is_not_its_shape() -> None:
    for name, parser_class in CLOUD_PARSERS.items():
        batch = [RawRecord(b"[1, 2]", "x:1", NOW), RawRecord(b"not json", "x:2", NOW),
                 RawRecord(b'{"records": []}', "x:3", NOW), RawRecord(b'{"a": {"b": 1}}', "x:4", NOW)]
        parsed = parser_class().parse_records(batch, tenant="council", source=name)
        assert parsed.events == 0 and len(parsed.dead) == 4, name
        assert all(letter.reason for letter in parsed.dead)


def test_soc_ingest_takes_each_dataset_by_its_name(cloud: Path, tmp_path: Path) -> None:
    home = tmp_path / "soc"
    assert run_soc(home, "tenants", "add", "council")[0] == 0
    okta = cloud / "okta" / "okta-developer-docs" / "derived"
    code, out, err = run_soc(home, "ingest", "--tenant", "council", "--source", "okta.system", str(okta))
    assert code == 0, err
    assert "4 stored (okta.system: 4)" in out
    blob = (cloud / "m365" / "office-365-management-api" / "derived"
            / "office-365-management-activity-api-reference.content-blob-example.L388-L479.json")
    code, out, err = run_soc(home, "ingest", "--tenant", "council", "--source", "o365.audit", str(blob))
    assert code == 0, err
    assert "3 stored (o365.audit: 3)" in out
    labels = cloud / "m365" / "office-365-management-api" / "derived" / "uals_auditdata_from_docs.labels.ndjson"
    code, out, _ = run_soc(home, "ingest", "--tenant", "council", "--source", "o365.audit", str(labels))
    assert code != 0 and "every record of 1 file(s) was dead-lettered" in out  # not audit records: said so
    code, out, _ = run_soc(home, "ingest", "--tenant", "council", "--source", "okta.system", str(okta))
    assert "0 stored" in out and "4 already stored" in out  # provider ids: a re-ingest adds nothing


def test_entra_risk_records_and_sign_in_codes_in_properties(tmp_path: Path) -> None:
    risk = {"time": "2026-01-01T08:00:00Z", "category": "UserRiskEvents", "operationName": "User Risk Detection",
            "tenantId": "t-1", "properties": {"id": "risk-1", "riskEventType": "unlikelyTravel", "riskLevel": "high",
                                              "riskState": "atRisk", "userPrincipalName": "alice@contoso.example",
                                              "ipAddress": "198.51.100.23", "additionalInfo": [{"Key": "k"}]}}
    worded = {"time": "2026-01-01T08:00:00Z", "category": "SignInLogs", "operationName": "Sign-in activity",
              "resultType": "Failure", "properties": {"id": "s-1", "status": {"errorCode": 50053}}}
    (tmp_path / "hub.json").write_bytes(orjson.dumps({"records": [risk, worded]}))
    events, letters = parse("azure.identity_protection", tmp_path / "hub.json")
    assert letters == []
    (risk_doc, signin_doc) = (event.doc for event in events)
    assert [event.dataset for event in events] == ["azure.identity_protection", "azure.signinlogs"]
    properties = risk_doc["azure"]["identity_protection"]["properties"]
    assert properties["risk_event_type"] == "unlikelyTravel" and properties["risk_level"] == "high"
    assert risk_doc["event"]["id"] == "risk-1" and risk_doc["user"]["email"] == "alice@contoso.example"
    assert risk_doc["source"]["ip"] == "198.51.100.23"
    # a word where the error code belongs: the code of properties.status is what rules compare with
    assert signin_doc["azure"]["signinlogs"]["result_type"] == "50053"
    assert signin_doc["event"]["outcome"] == "failure"
