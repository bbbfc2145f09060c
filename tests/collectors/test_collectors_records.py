"""`LogParser.parse_records` as the drainer calls it: records in, tables in ARROW_SCHEMA and dead letters out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from citysoc.ids import Occurrences
from citysoc.schema import ARROW_SCHEMA
from collectors import AuditdParser, CloudTrailParser, ParserOptions, RawRecord, ReadProblem, SyslogParser
from collectors.base import LogParser, Normalised
from collectors.columns import table_docs
from collectors.records import ParsedBatch
from tests.collectors.samples import AUDIT_GETCAP

ARRIVAL = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FAILED = ("Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port "
          "38926 ssh2")


def records(*payloads: str | bytes, received: datetime = ARRIVAL) -> list[RawRecord]:
    return [RawRecord(p.encode() if isinstance(p, str) else p, f"tcp 192.0.2.7:514 #{i}", received)
            for i, p in enumerate(payloads)]


def docs(batch: ParsedBatch) -> list[dict[str, Any]]:
    return [doc for table in batch.tables.values() for doc in table_docs(table)]


def test_every_record_is_an_event_or_a_dead_letter_with_its_origin() -> None:
    batch = SyslogParser(ParserOptions(year=2024)).parse_records(
        records(FAILED, "not syslog at all", "", "   ", "Dec 10 06:55:49 LabSZ sshd[24201]: Connection closed by "
                "173.234.31.186 [preauth]"), tenant="council", source="syslog")
    assert batch.events == 2 and batch.skipped == 2
    assert [(letter.origin, letter.reason.split(" (")[0]) for letter in batch.dead] == [
        ("tcp 192.0.2.7:514 #1", "not a syslog line")]
    assert batch.dead[0].received == ARRIVAL.isoformat()
    for table in batch.tables.values():
        assert table.schema == ARROW_SCHEMA
    assert {doc["event"]["ingested"] for doc in docs(batch)} == {ARRIVAL}  # arrival, not parse time
    assert {doc["organization"]["id"] for doc in docs(batch)} == {"council"}


def test_tables_are_split_by_dataset_in_record_order() -> None:
    lines = [FAILED, "Mar  4 08:00:02 web01 systemd[1]: Started Session c42 of User alice.",
             f"Mar  1 12:00:00 web01 audisp-syslog: {AUDIT_GETCAP[0]}", FAILED.replace("06:55:48", "06:55:50")]
    batch = SyslogParser(ParserOptions(year=2024)).parse_records(records(*lines), tenant="council", source="syslog")
    assert {name: table.num_rows for name, table in batch.tables.items()} == {
        "system.auth": 2, "system.syslog": 1, "auditd.log": 1}
    auth = table_docs(batch.tables["system.auth"])
    assert [doc["@timestamp"].second for doc in auth] == [48, 50]


def test_identical_records_in_one_call_both_stay_and_a_replay_gives_the_same_ids() -> None:
    parser = SyslogParser(ParserOptions(year=2024))
    first = docs(parser.parse_records(records(FAILED, FAILED), tenant="council", source="syslog"))
    again = docs(parser.parse_records(records(FAILED, FAILED), tenant="council", source="syslog"))
    ids = [doc["event"]["id"] for doc in first]
    assert len(set(ids)) == 2
    assert ids == [doc["event"]["id"] for doc in again]


def test_ids_cover_tenant_source_and_resolved_time() -> None:
    def one(year: int, tenant: str = "council", source: str = "syslog") -> str:
        batch = SyslogParser(ParserOptions(year=year)).parse_records(records(FAILED), tenant=tenant, source=source)
        return str(docs(batch)[0]["event"]["id"])

    ids = {one(2023), one(2024), one(2024, tenant="northgate"), one(2024, source="relp")}
    assert len(ids) == 4


def test_occurrences_carry_over_from_one_call_to_the_next() -> None:
    parser = SyslogParser(ParserOptions(year=2024))
    counter = Occurrences()
    first = docs(parser.parse_records(records(FAILED), tenant="council", source="syslog", occurrences=counter))
    second = docs(parser.parse_records(records(FAILED), tenant="council", source="syslog", occurrences=counter))
    alone = docs(parser.parse_records(records(FAILED, FAILED), tenant="council", source="syslog"))
    assert [first[0]["event"]["id"], second[0]["event"]["id"]] == [doc["event"]["id"] for doc in alone]


def test_year_less_time_of_a_live_record_follows_its_arrival() -> None:
    december = "Dec 31 23:59:00 gw kernel: late"
    parser = SyslogParser()  # no year, no reference: the record's own arrival decides
    early_january = docs(parser.parse_records(records(december, received=datetime(2025, 1, 1, 0, 1, tzinfo=UTC)),
                                              tenant="council", source="syslog"))
    assert early_january[0]["@timestamp"] == datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
    same_day = docs(parser.parse_records(records(december, received=datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)),
                                         tenant="council", source="syslog"))
    assert same_day[0]["@timestamp"] == datetime(2025, 12, 31, 23, 59, tzinfo=UTC)


def test_reader_problems_become_dead_letters_with_the_readers_reason_size_and_digest() -> None:
    record = RawRecord(b"Dec 10 06:55:48 LabSZ sshd[1]: " + b"x" * 100, "auth.log:9", ARRIVAL,
                       ReadProblem("record of 5000000 bytes is over the limit", size=5_000_000, sha256="ab" * 32))
    batch = SyslogParser(ParserOptions(year=2024)).parse_records([record], tenant="council", source="syslog")
    assert batch.events == 0
    (letter,) = batch.dead
    assert (letter.origin, letter.reason, letter.raw_size, letter.raw_sha256) == (
        "auth.log:9", "record of 5000000 bytes is over the limit", 5_000_000, "ab" * 32)


def test_trailing_newlines_of_a_datagram_are_not_part_of_the_message() -> None:
    batch = SyslogParser(ParserOptions(year=2024)).parse_records(records(FAILED + "\r\n\x00"), tenant="council",
                                                               source="syslog")
    assert docs(batch)[0]["event"]["original"] == FAILED


class _BuggySyslog(SyslogParser):
    """A parser with a bug that one record triggers: the shared machinery must cost that record only."""

    def normalise(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> Normalised:
        if any(b"trigger" in record.payload for record in records):
            raise RuntimeError("boom")
        return super().normalise(records, tenant=tenant, source=source)


def test_a_parser_failure_costs_the_one_record_that_triggers_it() -> None:
    lines = [FAILED.replace("06:55:48", f"06:55:{second:02d}") for second in range(10)]
    lines[6] = "Dec 10 06:55:46 LabSZ sshd[1]: trigger"
    batch = _BuggySyslog(ParserOptions(year=2024)).parse_records(records(*lines), tenant="council", source="syslog")
    assert batch.events == 9
    (letter,) = batch.dead
    assert letter.origin == "tcp 192.0.2.7:514 #6"
    assert "RuntimeError: boom" in letter.reason


@pytest.mark.parametrize("parser", [SyslogParser(ParserOptions(year=2024)), AuditdParser(), CloudTrailParser()])
def test_an_empty_batch_is_empty(parser: LogParser) -> None:
    assert parser.parse_records([], tenant="council", source=parser.name) == ParsedBatch()


def test_cloudtrail_records_pushed_one_by_one_or_as_an_s3_object() -> None:
    record = {"eventVersion": "1.08", "eventID": "e-1", "eventTime": "2024-07-31T13:06:24Z",
              "eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com",
              "responseElements": {"ConsoleLogin": "Failure"}, "sourceIPAddress": "198.51.100.4",
              "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "111122223333"}}
    other = dict(record, eventID="e-2", eventName="ListBuckets")
    pushed = CloudTrailParser().parse_records(
        records(orjson.dumps(record), orjson.dumps({"Records": [other, "junk"]})), tenant="council",
        source="aws.cloudtrail")
    assert sorted(doc["event"]["id"] for doc in docs(pushed)) == ["e-1", "e-2"]  # CloudTrail's own eventID
    login = next(doc for doc in docs(pushed) if doc["event"]["id"] == "e-1")
    assert (login["event"]["outcome"], login["user"]["name"], login["source"]["ip"]) == (
        "failure", "alice", "198.51.100.4")
    (letter,) = pushed.dead
    assert (letter.origin, letter.reason) == ("tcp 192.0.2.7:514 #1:record[1]", "record is not a JSON object but str")


def test_event_ingested_is_each_records_own_arrival() -> None:
    later = ARRIVAL + timedelta(seconds=5)
    batch = SyslogParser(ParserOptions(year=2024)).parse_records(
        [*records(FAILED), *records(FAILED.replace("48", "49"), received=later)], tenant="council", source="syslog")
    assert [doc["event"]["ingested"] for doc in docs(batch)] == [ARRIVAL, later]
