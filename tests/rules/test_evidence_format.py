"""The evidence format: raw records through the real collectors, line numbers, expectations, inline evidence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collectors.errors import UnparsableRecordError
from collectors.raw import parse_raw
from correlator.authoring.evidence import EvidenceError, evidence_for_rule, load_evidence, parse_evidence
from correlator.errors import RuleLocation
from tests.rules.conftest import write_rule

LINE = ("Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 "
        "port 38926 ssh2")


def test_raw_syslog_line_goes_through_the_syslog_collector() -> None:
    dataset, doc = parse_raw("syslog", LINE, tenant="council", year=2026)
    assert dataset == "system.auth"
    assert doc["system"]["auth"]["ssh"]["event"] == "Failed"
    assert doc["source"]["ip"] == "173.234.31.186" and doc["user"]["name"] == "webmaster"
    assert doc["@timestamp"].isoformat() == "2026-12-10T06:55:48+00:00"
    assert doc["event"]["original"] == LINE and "file" not in doc.get("log", {})
    assert parse_raw("system.auth", LINE, tenant="council", year=2026)[0] == "system.auth"  # dataset as source


def test_raw_cloudtrail_record_as_mapping_or_json_text() -> None:
    record = {"eventVersion": "1.10", "eventID": "e-1", "eventTime": "2024-07-31T13:06:24Z",
              "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
              "requestParameters": {"name": "t"}, "userIdentity": {"type": "IAMUser", "userName": "mallory",
                                                                    "sessionToken": "SECRET-TOKEN"}}
    dataset, doc = parse_raw("cloudtrail", record, tenant="council")
    assert dataset == "aws.cloudtrail"
    assert doc["event"]["action"] == "StopLogging" and doc["user"]["name"] == "mallory"
    assert doc["aws"]["cloudtrail"]["request_parameters"] == '{"name":"t"}'
    assert "SECRET-TOKEN" not in doc["event"]["original"]  # redacted as on ingest
    import json

    assert parse_raw("aws.cloudtrail", json.dumps(record), tenant="council")[1]["event"]["id"] == "e-1"


def test_raw_records_the_collector_refuses_explain_why() -> None:
    with pytest.raises(UnparsableRecordError, match="not a syslog line"):
        parse_raw("syslog", "hello", tenant="council")
    with pytest.raises(UnparsableRecordError, match="one line"):
        parse_raw("syslog", f"{LINE}\n{LINE}", tenant="council")
    with pytest.raises(UnparsableRecordError, match="lacks eventID"):
        parse_raw("aws.cloudtrail", {"eventName": "x"}, tenant="council")


def test_cases_know_their_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.evidence.yaml"
    path.write_text(textwrap.dedent("""\
        # comment
        examples:
          - description: fires
            match: true
            ecs: {user.name: alice}
          - description: panther style
            expected_result: false
            raw: "line"
        sequences:
          - description: range
            alerts: {at_least: 1, at_most: 3}
            events:
              - ecs: {user.name: alice}
        """))
    first, second, third = load_evidence(path)
    assert (first.location.line, second.location.line, third.location.line) == (3, 6, 10)
    assert first.where == f"{path}:3" and second.expected == 0
    assert third.holds(1) and third.holds(3) and not third.holds(0) and not third.holds(4)
    assert third.describe_expectation() == "1..3 alert(s)"


@pytest.mark.parametrize("body, message", [
    ({"examples": [{"match": "yes", "ecs": {}}]}, "`match:` must be true or false"),
    ({"examples": [{"match": True, "ecs": {}, "raw": "x"}]}, "exactly one of `ecs:` or `raw:`"),
    ({"examples": [{"match": True, "ecs": {"user.nmae": "x", "source.ip": "192.0.2.1"}}]},
     r"field\(s\) not in the event schema: user.nmae"),
    ({"examples": [{"match": True, "ecs": ["user.name"]}]}, "`ecs:` is a mapping of ECS fields"),
    ({"sequences": [{"alerts": {"most": 1}, "events": [{"ecs": {}}]}]}, "at_least, at_most or exactly"),
    ({"sequences": [{"alerts": 1}]}, "needs `events:`"),
    ({}, "no `examples:` or `sequences:`"),
])
def test_malformed_evidence_reads_like_advice(body: dict, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        parse_evidence(body, source="e.yaml")


def test_inline_evidence_in_the_rule(tmp_path: Path) -> None:
    path = write_rule(tmp_path / "linux", "inline")
    path.write_text(path.read_text() + textwrap.dedent("""\
        citysoc:
            evidence:
                examples:
                  - description: inline case
                    match: true
                    ecs: {system.auth.ssh.event: Failed, process.name: sshd}
        """))
    (case,) = evidence_for_rule(path) or []
    assert case.description == "inline case" and case.location == RuleLocation(str(path), 23)
    assert evidence_for_rule(write_rule(tmp_path / "linux", "none")) is None
