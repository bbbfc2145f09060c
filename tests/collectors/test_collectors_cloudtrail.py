"""CloudTrail parsing on the real Stratus Red Team corpus, its file variants, bad input and redaction."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from citysoc.deadletter import DeadLetter
from citysoc.schema import to_row
from collectors import CloudTrailParser, ParsedEvent, ParserOptions, get_parser
from collectors.cloudtrail import normalise
from collectors.redact import REDACTED

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STOP_LOGGING_ID = "10163ed2-2253-469d-a5ee-cbc6651f8934"
FEDERATION_TOKEN_ID_PREFIX = "6e882b9d"


def parse(path: Path) -> tuple[list[ParsedEvent], list[DeadLetter]]:
    events: list[ParsedEvent] = []
    letters: list[DeadLetter] = []
    for item in CloudTrailParser(ParserOptions(now=NOW)).parse(path, tenant="council", source="aws.cloudtrail"):
        (letters if isinstance(item, DeadLetter) else events).append(item)  # type: ignore[arg-type]
    return events, letters


def stratus_records(corpora: Path, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads((corpora / "stratus" / f"{name}.json").read_text())
    return records


def test_whole_stratus_corpus_parses_without_dead_letters(corpora: Path) -> None:
    files = sorted((corpora / "stratus").glob("*.json"))
    assert len(files) == 35
    total, ids = 0, Counter[str]()
    for path in files:
        events, letters = parse(path)
        assert letters == [], f"{path.name}: {letters[:1]}"
        for event in events:
            assert event.dataset == "aws.cloudtrail"
            row = to_row(event.doc)  # every field is in the schema
            assert row["@timestamp"].tzinfo is not None
            assert row["event"]["ingested"] == NOW
            ids[row["event"]["id"]] += 1
        total += len(events)
    assert total == 310
    assert len(ids) == 310  # eventIDs are unique across the corpus


def test_stop_logging_record_maps_like_elastic(corpora: Path) -> None:
    events, _ = parse(corpora / "stratus" / "aws.defense-evasion.cloudtrail-stop.json")
    doc = next(e.doc for e in events if e.doc["event"]["id"] == STOP_LOGGING_ID)
    assert doc["@timestamp"] == datetime(2024, 7, 31, 13, 6, 24, tzinfo=UTC)
    assert doc["event"]["action"] == "StopLogging"
    assert doc["event"]["provider"] == "cloudtrail.amazonaws.com"
    assert doc["event"]["dataset"] == "aws.cloudtrail"
    assert doc["event"]["module"] == "aws"
    assert doc["event"]["outcome"] == "success"
    assert doc["user"] == {"name": "christophe", "id": "AIDAOC1SYDVN0AF0FMMR"}
    assert doc["cloud"] == {"provider": "aws", "region": "apiso-centralnorth-2r", "account": {"id": "143434273843"}}
    assert doc["source"] == {"address": "86.245.153.234", "ip": "86.245.153.234"}
    assert doc["related"] == {"ip": ["86.245.153.234"], "user": ["christophe"]}
    assert doc["organization"]["id"] == "council"
    trail = doc["aws"]["cloudtrail"]
    assert trail["user_identity"]["type"] == "IAMUser"
    assert trail["user_identity"]["access_key_id"] == "AKIAGGWFBBHBE7D3M9WI"
    assert trail["read_only"] is False and trail["management_event"] is True
    assert trail["request_parameters"] == '{"name":"stratus-red-team-ct-stop-trail-buykxbqejv"}'
    assert trail["tls_details"]["tls_version"] == "TLSv1.3"
    original = json.loads(doc["event"]["original"])
    assert original["eventID"] == STOP_LOGGING_ID and original["userIdentity"]["userName"] == "christophe"


def test_failed_calls_are_failures_with_error_fields(corpora: Path) -> None:
    events, _ = parse(corpora / "stratus" / "aws.credential-access.ec2-get-password-data.json")
    failed = [e.doc for e in events if e.doc["event"]["action"] == "GetPasswordData"]
    assert failed and all(doc["event"]["outcome"] == "failure" for doc in failed)
    assert {doc["error"]["code"] for doc in failed} == {"Client.UnauthorizedOperation"}
    assert all(doc["aws"]["cloudtrail"]["error_code"] == "Client.UnauthorizedOperation" for doc in failed)


def test_assumed_role_user_name_comes_from_the_session_issuer(corpora: Path) -> None:
    records = [r for path in sorted((corpora / "stratus").glob("*.json")) for r in json.loads(path.read_text())]
    assumed = next(r for r in records if r["userIdentity"].get("type") == "AssumedRole"
                   and "userName" not in r["userIdentity"])
    issuer = assumed["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"]
    doc = normalise(assumed, tenant="council", options=ParserOptions(now=NOW))
    assert doc["user"]["name"] == issuer
    assert doc["aws"]["cloudtrail"]["user_identity"]["session_context"]["session_issuer"]["user_name"] == issuer


def test_fields_keep_the_form_cloudtrail_wrote() -> None:
    """CloudTrail's own text rules, where the cloud parsers' shared helpers differ: an empty string is kept, a
    number is written as JSON writes it, and `source.ip` is only an address written exactly as one."""
    base = {"eventTime": "2024-07-31T13:06:24Z", "eventID": "e1", "eventName": "GetObject"}

    def cloudtrail(**fields: Any) -> dict[str, Any]:
        doc: dict[str, Any] = normalise({**base, **fields}, tenant="council", options=ParserOptions(now=NOW))
        return doc

    doc = cloudtrail(userAgent="", awsRegion=5e-05, requestParameters={"b": 1, "a": [1e-7, {"d": 2, "c": None}]})
    assert doc["user_agent"]["original"] == ""
    assert doc["cloud"]["region"] == "0.00005"
    assert doc["aws"]["cloudtrail"]["request_parameters"] == '{"a":[1e-7,{"c":null,"d":2}],"b":1}'
    assert cloudtrail(sourceIPAddress="2001:DB8::1")["source"]["ip"] == "2001:DB8::1"
    for address in ("1.2.3.4:443", "[::1]:443", " 1.2.3.4", "AWS Internal"):
        doc = cloudtrail(sourceIPAddress=address)
        assert doc["source"]["address"] == address and "ip" not in doc["source"], address


def _variants(tmp_path: Path, records: list[dict[str, Any]]) -> dict[str, Path]:
    records_object = orjson.dumps({"Records": records})
    array = orjson.dumps(records, option=orjson.OPT_INDENT_2)
    ndjson = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    files = {
        "records.json": records_object,
        "array.json": array,
        "lines.ndjson": ndjson,
        "records.json.gz": gzip.compress(records_object),
        "array.json.gz": gzip.compress(array),
        "lines.jsonl.gz": gzip.compress(ndjson),
        "gzip-without-suffix.log": gzip.compress(records_object),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in files}


def test_records_object_array_ndjson_and_gzip_give_identical_events(corpora: Path, tmp_path: Path) -> None:
    records = stratus_records(corpora, "aws.credential-access.ec2-get-password-data")  # carries session tokens
    assert len(records) > 30
    results = {}
    for name, path in _variants(tmp_path, records).items():
        events, letters = parse(path)
        assert letters == [], name
        results[name] = [e.doc for e in events]
    reference = results["records.json"]
    assert len(reference) == len(records)
    for name, docs in results.items():
        assert docs == reference, name


def test_truncated_file_keeps_its_whole_records_then_one_dead_letter(corpora: Path, tmp_path: Path) -> None:
    first = stratus_records(corpora, "aws.defense-evasion.cloudtrail-stop")[0]
    with_token = stratus_records(corpora, "aws.persistence.sts-federation-token")
    content = json.dumps([first, *with_token], indent=2)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(content[: content.index("IQoJb3JpZ2luX2Vj") + 40])  # cut inside a session token
    events, letters = parse(truncated)
    assert [e.doc["event"]["id"] for e in events] == [first["eventID"]]
    assert len(letters) == 1
    assert letters[0].origin == f"{truncated}:record[1]"
    assert letters[0].reason.startswith("not JSON")
    assert "IQoJb3JpZ2luX2Vj" not in letters[0].raw  # the session token is redacted even cut off


def test_not_json_and_bad_ndjson_lines_go_to_dead_letters(corpora: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\x01 this is not json\n")
    assert len(parse(garbage)[1]) == 1

    record = stratus_records(corpora, "aws.defense-evasion.cloudtrail-stop")[0]
    lines = tmp_path / "mixed.ndjson"
    lines.write_bytes(orjson.dumps(record) + b"\n{broken\n\n" + orjson.dumps([1, 2]) + b"\n")
    events, letters = parse(lines)
    assert len(events) == 1
    assert {(letter.origin, letter.reason.split(":")[0]) for letter in letters} == {
        (f"{lines}:2", "record is not JSON"),
        (f"{lines}:4", "record is not a JSON object but list"),
    }


def test_record_without_event_id_or_with_a_bad_time_is_dead_lettered(corpora: Path, tmp_path: Path) -> None:
    good, no_id, bad_time = (dict(r) for r in stratus_records(corpora, "aws.execution.ssm-send-command")[:3])
    del no_id["eventID"]
    bad_time["eventTime"] = "yesterday"
    path = tmp_path / "records.json"
    path.write_bytes(orjson.dumps({"Records": [good, no_id, bad_time, "a string"]}))
    events, letters = parse(path)
    assert [e.doc["event"]["id"] for e in events] == [good["eventID"]]
    assert [(letter.origin, letter.reason) for letter in letters] == [
        (f"{path}:record[1]", "record lacks eventID"),
        (f"{path}:record[2]", "eventTime 'yesterday' is not an ISO-8601 time"),
        (f"{path}:record[3]", "record is not a JSON object but str"),
    ]
    assert json.loads(letters[0].raw)["eventName"] == no_id["eventName"]


def test_session_token_of_a_real_record_is_redacted(corpora: Path) -> None:
    path = corpora / "stratus" / "aws.persistence.sts-federation-token.json"
    raw = next(r for r in json.loads(path.read_text()) if r["eventID"].startswith(FEDERATION_TOKEN_ID_PREFIX))
    token = raw["responseElements"]["credentials"]["sessionToken"]
    assert len(token) > 100  # the corpus really carries a secret
    events, _ = parse(path)
    doc = next(e.doc for e in events if e.doc["event"]["id"] == raw["eventID"])
    stored = orjson.dumps(doc, default=str).decode()
    assert token not in stored
    assert token[:40] not in stored
    credentials = json.loads(doc["aws"]["cloudtrail"]["response_elements"])["credentials"]
    assert credentials["sessionToken"] == REDACTED
    assert credentials["accessKeyId"] == raw["responseElements"]["credentials"]["accessKeyId"]  # ids are kept
    original = json.loads(doc["event"]["original"])
    assert original["responseElements"]["credentials"]["sessionToken"] == REDACTED


@pytest.mark.parametrize("key", ["secretAccessKey", "password", "PrivateKey", "SessionToken"])
def test_secret_keys_are_redacted_at_any_depth_case_insensitively(corpora: Path, tmp_path: Path, key: str) -> None:
    record = dict(stratus_records(corpora, "aws.defense-evasion.cloudtrail-stop")[0])
    record["requestParameters"] = {"nested": [{key: "hunter2-very-secret"}], "credentials": {"other": "s3cr3t"}}
    path = tmp_path / "records.json"
    path.write_bytes(orjson.dumps([record]))
    events, letters = parse(path)
    assert letters == []
    text = orjson.dumps(events[0].doc, default=str).decode()
    assert "hunter2-very-secret" not in text and "s3cr3t" not in text
    assert text.count(REDACTED) == 4  # two secrets, each in request_parameters and event.original


def test_alias_resolves_to_the_same_parser() -> None:
    assert get_parser("cloudtrail") is get_parser("aws.cloudtrail") is CloudTrailParser
