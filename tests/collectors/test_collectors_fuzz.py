"""Property tests: arbitrary bytes into every parser's `parse_records` and into `records()` of arbitrary files.

Whatever comes in, nothing escapes; every non-blank record is stored or dead-lettered with a reason and its
origin; every table matches ARROW_SCHEMA exactly and the real store accepts it.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors import AuditdParser, CloudTrailParser, ParserOptions, RawRecord, SyslogParser
from collectors.base import LogParser
from collectors.files import ReadLimits
from collectors.records import ParsedBatch
from tests.collectors.samples import AUDIT_GETCAP, AUDIT_USER_LOGIN_FAILED, sysmon_line

NOW = datetime(2026, 3, 2, tzinfo=UTC)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_READS = ReadLimits(max_record_bytes=2048, kept_prefix_bytes=64, chunk_bytes=97)

SYSLOG_SEEDS = [
    "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 "
    "ssh2",
    "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    "<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [x@1 a=\"b\\\"c\"] msg",
    "2024-12-10T06:55:46.123456+01:00 web01 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; "
    "PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
    "Mar 12 10:01:02 alpine authpriv.warn dropbear[802]: Bad password attempt for 'root' from 198.51.100.51:40101",
    "Mar 12 10:00:00 fgt CEF:0|Fortinet|Fortigate|v7|01|login failed|7|duser=admin src=198.51.100.70 outcome=failure",
    "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=192.0.2.10^usrName=carol^devTime=1710237600000",
    f"Mar  1 12:00:00 web01 audisp-syslog: {AUDIT_GETCAP[0]}",
    sysmon_line(1, {"Image": "/usr/bin/id", "ProcessId": "²"}),
    "Dec 10 06:55:46 host sshd(pam_unix)[1]: authentication failure; logname= uid=0 euid=0 tty=x ruser= rhost=h  "
    "user=r",
]
AUDIT_SEEDS = [*AUDIT_GETCAP, AUDIT_USER_LOGIN_FAILED, "audit: type=1300 audit(1700000000.000:2): pid=1 comm=\"x\""]


def mutated(seeds: list[str]) -> st.SearchStrategy[bytes]:
    """A seed with text cut out of it, inserted into it, or both: near-misses of every shape the parser knows."""
    def mutate(seed: str, cut: int, length: int, insert: str, position: int) -> bytes:
        start = cut % (len(seed) + 1)
        text = seed[:start] + seed[start + length:]
        at = position % (len(text) + 1)
        return (text[:at] + insert + text[at:]).encode("utf-8", errors="surrogatepass")

    return st.builds(mutate, st.sampled_from(seeds), st.integers(0, 400), st.integers(0, 40),
                     st.text(max_size=30), st.integers(0, 400))


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                         st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)
CLOUDTRAIL_RECORDS = st.fixed_dictionaries(
    {"eventID": st.one_of(st.text(max_size=8), JSON_VALUES), "eventTime": st.one_of(
        st.sampled_from(["2024-07-31T13:06:24Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "x"]),
        JSON_VALUES), "eventName": st.one_of(st.just("ConsoleLogin"), JSON_VALUES)},
    optional={"eventSource": JSON_VALUES, "userIdentity": JSON_VALUES, "sourceIPAddress": JSON_VALUES,
              "requestParameters": JSON_VALUES, "readOnly": JSON_VALUES, "awsRegion": JSON_VALUES,
              "responseElements": JSON_VALUES, "errorCode": JSON_VALUES})


def json_payloads() -> st.SearchStrategy[bytes]:
    def dumped(value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:  # integers past 64 bits: JSON allows them, and a sender may write them
            return json.dumps(value).encode()

    return st.one_of(st.builds(dumped, CLOUDTRAIL_RECORDS), st.builds(dumped, JSON_VALUES),
                     st.builds(lambda r: dumped({"Records": r}), st.lists(CLOUDTRAIL_RECORDS, max_size=3)),
                     st.binary(max_size=200))


def outcomes(parser: LogParser, records: list[RawRecord]) -> ParsedBatch:
    batch = parser.parse_records(records, tenant="council", source=parser.name)
    origins = {record.origin for record in records}
    for letter in batch.dead:
        assert letter.reason
        assert letter.origin in origins or letter.origin.split(":record[")[0] in origins
    for dataset, table in batch.tables.items():
        assert dataset in parser.datasets
        assert table.schema == ARROW_SCHEMA
        table.validate(full=True)
        assert table.column("event").combine_chunks().field("id").null_count == 0
        assert table.column("@timestamp").null_count == 0
    return batch


def expected_outcomes(parser: LogParser, record: RawRecord) -> int:
    if not record.payload.strip():
        return 0
    if isinstance(parser, CloudTrailParser):
        try:
            document = orjson.loads(record.payload)
        except orjson.JSONDecodeError:
            return 1
        if isinstance(document, dict) and isinstance(document.get("Records"), list):
            return len(document["Records"])
    return 1


def check(parser: LogParser, payloads: list[bytes], store: ParquetEventStore | None = None) -> None:
    records = [RawRecord(payload, f"fuzz #{n}", NOW) for n, payload in enumerate(payloads)]
    batch = outcomes(parser, records)
    assert batch.events + len(batch.dead) == sum(expected_outcomes(parser, record) for record in records)
    assert batch.skipped == sum(1 for record in records if not record.payload.strip())
    if store is not None:
        for dataset, table in batch.tables.items():
            store.write_table(tenant="council", dataset=dataset, table=table)


_STORE = ParquetEventStore(Path(tempfile.mkdtemp(prefix="citysoc-fuzz-")) / "events")


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(SYSLOG_SEEDS)), max_size=12))
def test_syslog_takes_any_bytes(payloads: list[bytes]) -> None:
    check(SyslogParser(ParserOptions(year=2024)), payloads, _STORE)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(SYSLOG_SEEDS)), max_size=12))
def test_syslog_without_year_takes_any_bytes(payloads: list[bytes]) -> None:
    check(SyslogParser(), payloads)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(AUDIT_SEEDS)), max_size=12))
def test_auditd_takes_any_bytes(payloads: list[bytes]) -> None:
    check(AuditdParser(), payloads, _STORE)


@FUZZ
@given(st.lists(json_payloads(), max_size=8))
def test_cloudtrail_takes_any_bytes(payloads: list[bytes]) -> None:
    check(CloudTrailParser(), payloads, _STORE)


@FUZZ
@given(st.sampled_from(["syslog", "auditd", "aws.cloudtrail"]),
       st.one_of(st.binary(max_size=3000), st.lists(st.one_of(mutated(SYSLOG_SEEDS), json_payloads()), max_size=10)
                 .map(lambda parts: b"\n".join(parts))),
       st.sampled_from(["plain", "gzip", "gzip cut"]), st.booleans())
def test_records_of_any_file_then_parse(kind: str, content: bytes, packing: str, crlf: bool) -> None:
    parser = {"syslog": SyslogParser(ParserOptions(year=2024), limits=SMALL_READS),
              "auditd": AuditdParser(limits=SMALL_READS),
              "aws.cloudtrail": CloudTrailParser(limits=SMALL_READS)}[kind]
    data = content.replace(b"\n", b"\r\n") if crlf else content
    if packing != "plain":
        data = gzip.compress(data)
        if packing == "gzip cut":
            data = data[: max(len(data) * 2 // 3, 2)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        records = list(parser.records(path))
    for record in records:
        assert record.origin.startswith(str(path))
        assert len(record.payload) <= SMALL_READS.max_record_bytes
    batch = outcomes(parser, records)
    assert batch.events + len(batch.dead) == sum(expected_outcomes(parser, record) for record in records) + sum(
        1 for record in records if record.problem is not None and not record.payload.strip())


def test_the_fuzz_store_reads_back() -> None:
    """What the property tests wrote is a lake Arrow reads whole (run after them in this module)."""
    for dataset in _STORE.datasets():
        lake = _STORE.arrow_dataset(dataset)
        assert lake is not None
        table = lake.to_table()
        assert pa.types.is_timestamp(table.schema.field("@timestamp").type)
