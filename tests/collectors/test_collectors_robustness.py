"""The ways independent tests broke file ingest, each as a file `soc ingest` is given: one bad record is
dead-lettered alone with its reason, everything around it is stored, and the run goes on."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from citysoc.deadletter import MAX_RAW_CHARS, DeadLetter, DeadLetterStore
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors.auditd import parse_pairs
from collectors.ingest import IngestReport, ingest_files
from tests.collectors.samples import sysmon_xml

GOOD = "Dec 10 06:55:{:02d} LabSZ sshd[24200]: Failed password for root from 203.0.113.{} port 4000 ssh2"


def good_lines(count: int, start: int = 0) -> list[str]:
    return [GOOD.format(i % 60, i % 250) for i in range(start, start + count)]


def ingest(tmp_path: Path, source: str, *files: tuple[str, bytes], **options: Any) -> tuple[
        IngestReport, ParquetEventStore, DeadLetterStore]:
    store, letters = ParquetEventStore(tmp_path / "events"), DeadLetterStore(tmp_path / "deadletter")
    paths = []
    for name, content in files:
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
    report = ingest_files(tenant="council", source=source, paths=paths, store=store, dead_letters=letters,
                          **{"year": 2024, **options})
    return report, store, letters


def reasons(letters: DeadLetterStore) -> dict[str, str]:
    return {letter["origin"].rsplit("/", 1)[-1]: letter["reason"] for letter in letters.list(limit=1000)}


def stored_rows(store: ParquetEventStore) -> int:
    return sum(pq.read_metadata(path).num_rows for path in store.events_dir.rglob("*.parquet"))


def test_bad_records_are_dead_lettered_alone_and_later_files_still_ingest(tmp_path: Path) -> None:
    bad = [
        "Dec 10 06:55:46 LabSZ sshd[²]: Failed password for root from 203.0.113.9 port 22 ssh2",  # pid in ²
        "Dec 10 06:55:46 LabSZ sshd[99999999999999999999]: Accepted password for bob from 203.0.113.9 port "
        "99999999999999999999 ssh2",  # beyond int64
        "<13>1 0001-01-01T00:00:00+01:00 host app - - - before year 1 in UTC",
        "<13>1 9999-12-31T23:30:00-01:00 host app - - - after year 9999 in UTC",
        "Mar  1 12:00:00 web01 audisp-syslog: type=SYSCALL msg=audit(99999999999999999999.1:7): arch=c000003e",
        "not syslog at all",
    ]
    first = "\n".join(good_lines(10) + bad[:3] + good_lines(10, 10) + bad[3:] + good_lines(5, 20)) + "\n"
    report, store, letters = ingest(tmp_path, "syslog", ("a.log", first.encode()),
                                    ("b.log", ("\n".join(good_lines(7, 30)) + "\n").encode()))
    # the pid in `²` and the out-of-range numbers are left out of the number fields; the lines are events
    assert report.stored == 10 + 2 + 10 + 5 + 7 == stored_rows(store)
    assert report.dead_lettered == 4 and report.files == 2
    assert sorted(reasons(letters).items()) == [
        ("a.log:13", "timestamp '0001-01-01T00:00:00+01:00' is not ISO-8601, or not a time between the years 1 "
                     "and 9999"),
        ("a.log:24", "timestamp '9999-12-31T23:30:00-01:00' is not ISO-8601, or not a time between the years 1 "
                     "and 9999"),
        ("a.log:25", "audit time 99999999999999999999.1 is out of range (years 1 to 9999)"),
        ("a.log:26", "not a syslog line (RFC 5424, RFC 3164 or 'Mmm dd hh:mm:ss host prog: msg')"),
    ]
    table = pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA)
    processes = {event["original"][22:60]: process for event, process in
                 zip(table.column("event").to_pylist(), table.column("process").to_pylist(), strict=True)}
    assert all(process["pid"] is None for original, process in processes.items() if "sshd[²]" in original
               or "sshd[999" in original)


def test_year_less_line_under_two_years_is_two_events(tmp_path: Path) -> None:
    content = ("\n".join(good_lines(3)) + "\n").encode()
    first, store, letters = ingest(tmp_path, "syslog", ("auth.log", content), year=2023)
    second = ingest_files(tenant="council", source="syslog", paths=[tmp_path / "in" / "auth.log"], store=store,
                          dead_letters=letters, year=2024)
    again = ingest_files(tenant="council", source="syslog", paths=[tmp_path / "in" / "auth.log"], store=store,
                         dead_letters=letters, year=2024)
    assert (first.stored, second.stored, again.stored, again.duplicates) == (3, 3, 0, 3)


def test_cr_only_line_ends_do_not_merge_lines(tmp_path: Path) -> None:
    lines = good_lines(4)
    content = f"{lines[0]}\r{lines[1]}\r\n{lines[2]}\n{lines[3]}\r".encode()
    report, _, _ = ingest(tmp_path, "syslog", ("mac.log", content))
    assert (report.stored, report.dead_lettered) == (4, 0)


@pytest.mark.parametrize("source", ["syslog", "auditd"])
def test_truncated_gzip_stores_what_was_readable_and_says_so_once(tmp_path: Path, source: str) -> None:
    if source == "syslog":
        lines = good_lines(3000)
    else:
        lines = [f"type=USER_AUTH msg=audit(1700000000.{i:03d}:{i}): pid={i} uid=0 msg='op=PAM:authentication "
                 f"acct=\"root\" exe=\"/usr/sbin/sshd\" addr=203.0.113.{i % 250} res=failed'" for i in range(3000)]
    packed = gzip.compress(("\n".join(lines) + "\n").encode())
    report, store, letters = ingest(tmp_path, source, ("log.1.gz", packed[: len(packed) // 2]))
    assert 500 < report.stored < 3000 and report.stored == stored_rows(store)
    (reason,) = reasons(letters).values()
    assert reason.startswith("gzip stream truncated")


def test_cloudtrail_scalars_given_as_objects_or_lists_are_json_text_and_bad_required_ones_dead_letters(
        tmp_path: Path) -> None:
    base = {"eventVersion": "1.08", "eventTime": "2024-07-31T13:06:24Z", "eventName": "GetObject",
            "eventSource": "s3.amazonaws.com"}
    odd = [
        dict(base, eventID="a", eventSource={"nested": 1}, awsRegion=["eu-west-2"], userAgent=12,
             errorCode=False, managementEvent={"x": 1}, readOnly="yes", sourceIPAddress=[1],
             userIdentity={"type": ["IAMUser"], "principalId": {"p": 1}, "userName": ["x"], "accountId": 123456789012,
                           "arn": {"a": 1}}, tlsDetails=["TLSv1.3"], requestID=9.5),
        dict(base, eventID={"id": 1}),
        dict(base, eventID="c", eventName=["GetObject"]),
        dict(base, eventID="d", eventTime={"t": 1}),
        dict(base, eventID="e", eventTime="0001-01-01T00:00:00+01:00"),
        dict(base, eventID="f"),
    ]
    report, store, letters = ingest(tmp_path, "aws.cloudtrail", ("odd.json", orjson.dumps({"Records": odd})))
    assert (report.stored, report.dead_lettered) == (2, 4)
    assert sorted(reasons(letters).items()) == [
        ("odd.json:record[1]", "eventID is not a string but dict"),
        ("odd.json:record[2]", "eventName is not a string but list"),
        ("odd.json:record[3]", "eventTime is not a string but dict"),
        ("odd.json:record[4]", "eventTime '0001-01-01T00:00:00+01:00' is out of range (years 1 to 9999 in UTC)"),
    ]
    table = pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA)
    rows = {row["event"]["id"]: row for row in table.to_pylist()}
    odd_row = rows["a"]
    assert odd_row["event"]["provider"] == '{"nested":1}'
    assert odd_row["cloud"]["region"] == '["eu-west-2"]'
    assert odd_row["user_agent"]["original"] == "12"
    assert odd_row["error"]["code"] == "false" and odd_row["event"]["outcome"] == "success"
    trail = odd_row["aws"]["cloudtrail"]
    assert trail["management_event"] is None and trail["read_only"] is None
    assert odd_row["aws"]["cloudtrail"]["user_identity"]["account_id"] == "123456789012"
    assert odd_row["aws"]["cloudtrail"]["request_id"] == "9.5"
    assert odd_row["source"]["ip"] is None


@pytest.mark.parametrize("depth", [200, 254, 255, 300, 1023, 1024, 1025, 5000])
def test_deeply_nested_json_costs_its_own_record_only(tmp_path: Path, depth: int) -> None:
    base = {"eventID": "ok-1", "eventTime": "2024-07-31T13:06:24Z", "eventName": "A"}
    deep: Any = "x"
    for _ in range(depth):
        deep = [deep]
    nested = dict(base, eventID="deep", requestParameters={"p": deep})
    text = json.dumps([base, nested, dict(base, eventID="ok-2")]) if depth < 900 else (
        "[" + json.dumps(base) + ', {"eventID": "deep", "eventTime": "2024-07-31T13:06:24Z", "eventName": "A", '
        '"requestParameters": {"p": ' + "[" * depth + '"x"' + "]" * depth + "}}, "
        + json.dumps(dict(base, eventID="ok-2")) + "]")
    report, _, letters = ingest(tmp_path, "aws.cloudtrail", ("deep.json", text.encode()))
    fits = depth + 2 <= 254  # record, requestParameters, p: the levels orjson can write back
    assert report.stored == (3 if fits else 2)
    assert report.dead_lettered == (0 if fits else 1)
    if not fits:
        (reason,) = reasons(letters).values()
        assert reason.startswith(("JSON nested deeper than 254 levels", "record is not JSON"))


def test_a_bad_first_ndjson_line_costs_that_line_only(tmp_path: Path) -> None:
    record = {"eventID": "1", "eventTime": "2024-07-31T13:06:24Z", "eventName": "A"}
    content = b'{"eventID": "broken\n' + b"\n".join(orjson.dumps(dict(record, eventID=str(i))) for i in range(5))
    report, _, letters = ingest(tmp_path, "aws.cloudtrail", ("trail.ndjson", content))
    assert (report.stored, report.dead_lettered) == (5, 1)
    assert list(reasons(letters)) == ["trail.ndjson:1"]


def test_audit_key_value_scan_is_linear() -> None:
    for body in ("a" * 60_000, "k=" * 30_000, 'k="' * 20_000, "k='" * 20_000, "=" * 60_000, "a=b " * 15_000,
                 "msg='" + "x=y " * 15_000):
        started = time.process_time()
        parse_pairs(body, record_type="SYSCALL")
        assert time.process_time() - started < 0.5, body[:10]


def test_huge_argc_ends(tmp_path: Path) -> None:
    line = 'type=EXECVE msg=audit(1700000000.000:1): argc=9999999999999 a0="id" a1="-u"\n'
    started = time.process_time()
    report, store, _ = ingest(tmp_path, "auditd", ("audit.log", line.encode()))
    assert time.process_time() - started < 5
    row = pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA).to_pylist()[0]
    assert report.stored == 1 and row["process"]["args"] == ["id", "-u"]


def test_a_file_with_only_dead_letters_is_reported(corpora: Path, tmp_path: Path) -> None:
    store, letters = ParquetEventStore(tmp_path / "events"), DeadLetterStore(tmp_path / "deadletter")
    apache = corpora / "loghub" / "Apache_2k.log"
    openssh = corpora / "loghub" / "OpenSSH_2k.log"
    report = ingest_files(tenant="council", source="syslog", paths=[apache, openssh], store=store,
                          dead_letters=letters, year=2024)
    assert report.all_dead_lettered_files == [apache] and report.failed
    assert report.stored == 2000 and report.dead_lettered == 2000
    assert f"every record of 1 file(s) was dead-lettered ({apache})" in report.summary()


def test_an_unreadable_file_is_a_dead_letter_and_the_others_ingest(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_text("\n".join(good_lines(3)) + "\n")
    locked = folder / "b.log"
    locked.write_text("\n".join(good_lines(3)) + "\n")
    locked.chmod(0)
    try:
        readable = locked.open("rb")  # root reads anything: then there is nothing to test
        readable.close()
        pytest.skip("running as a user who can read a file with mode 000")
    except PermissionError:
        pass
    store, letters = ParquetEventStore(tmp_path / "events"), DeadLetterStore(tmp_path / "deadletter")
    report = ingest_files(tenant="council", source="syslog", paths=[folder], store=store, dead_letters=letters,
                          year=2024)
    assert report.stored == 3 and report.all_dead_lettered_files == [locked]
    assert reasons(letters)["b.log"].startswith("cannot read the file")


def test_a_huge_dead_letter_is_bounded_in_sqlite(tmp_path: Path) -> None:
    letters = DeadLetterStore(tmp_path)
    raw = "y" * (5 * MAX_RAW_CHARS)
    letter = DeadLetter(tenant="council", source="syslog", origin="x:1", reason="r" * 10_000, raw=raw)
    assert letters.put([letter, letter]) == 1
    (stored,) = letters.list()
    assert len(stored["raw"]) == MAX_RAW_CHARS and stored["raw_size"] == len(raw)
    assert len(stored["reason"]) <= 2048 and stored["raw_sha256"] is not None


def test_many_batches_of_one_file_make_few_parquet_files(tmp_path: Path) -> None:
    content = ("\n".join(good_lines(50_000)) + "\n").encode()
    report, store, _ = ingest(tmp_path, "syslog", ("big.log", content), batch_size=5_000)
    assert report.stored == 50_000
    assert len(list(store.events_dir.rglob("*.parquet"))) <= 2  # ten parse batches, written in one or two pieces


def _peak_growth_mib(source: str, path: Path, home: Path) -> tuple[int, int]:
    """(records read, growth of the peak resident memory in MiB) of one ingest in a fresh process."""
    script = (
        "import resource, sys; from pathlib import Path\n"
        "from citysoc.deadletter import DeadLetterStore\nfrom citysoc.store import ParquetEventStore\n"
        "from collectors.ingest import ingest_files\n"
        "home = Path(sys.argv[3]); before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "report = ingest_files(tenant='council', source=sys.argv[1], paths=[Path(sys.argv[2])],"
        " store=ParquetEventStore(home / 'events'), dead_letters=DeadLetterStore(home / 'deadletter'), year=2024)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(report.read, (after - before) // 1024)\n")
    done = subprocess.run([sys.executable, "-c", script, source, str(path), str(home)], capture_output=True,
                          text=True, check=True)
    read, grown = (int(part) for part in done.stdout.splitlines()[-1].split())
    return read, grown


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """NDJSON of 40 MB and of 160 MB: the larger file costs no more memory than the smaller one."""
    record = {"eventVersion": "1.08", "eventTime": "2024-07-31T13:06:24Z", "eventName": "GetObject",
              "eventSource": "s3.amazonaws.com", "requestParameters": {"pad": "p" * 1200}}
    growth = {}
    for blocks in (30, 120):
        trail = tmp_path / f"trail-{blocks}.ndjson"
        with trail.open("wb") as handle:
            for block in range(blocks):
                handle.write(b"".join(orjson.dumps(dict(record, eventID=f"{block}-{i}")) + b"\n"
                                      for i in range(1000)))
        read, growth[blocks] = _peak_growth_mib("aws.cloudtrail", trail, tmp_path / f"home-{blocks}")
        assert read == blocks * 1000
    assert growth[120] < growth[30] + 64 and growth[120] < 400, growth


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """4.5 MB that expands to 4.6 GB of zeros: refused once it shows what it is, after a bounded read."""
    bomb = tmp_path / "bomb.log.gz"
    member = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # gzip members may follow one another
    bomb.write_bytes(member * 70)
    assert bomb.stat().st_size < 5 * 1024 * 1024
    read, grown = _peak_growth_mib("syslog", bomb, tmp_path / "home")
    assert read == 1 and grown < 200
    (letter,) = DeadLetterStore(tmp_path / "home" / "deadletter").list()
    assert "decompression bomb" in letter["reason"] and len(letter["raw"]) <= MAX_RAW_CHARS


HUGE = "99999999999999999999"
NUMBER_CASES = [
    ("syslog", f"Dec 10 06:55:46 LabSZ sshd[{digit}]: Failed password for root from 203.0.113.9 port {digit} ssh2",
     ["process.pid", "source.port"])
    for digit in ("²", "٣", HUGE)
] + [
    ("syslog", f"<38>1 2024-03-12T10:01:02Z host sshd {digit} - - Accepted password for bob from 192.0.2.1 port "
               "22 ssh2", ["process.pid"]) for digit in ("²", HUGE)
] + [
    ("syslog", "Mar  1 12:00:00 web01 sysmon[1234]: " + sysmon_xml(1, {"Image": "/usr/bin/id", "ProcessId": digit,
                                                                       "ParentProcessId": digit}),
     ["process.pid", "process.parent.pid"]) for digit in ("²", HUGE)
] + [
    ("auditd", f"type=SYSCALL msg=audit(1700000000.000:{seq}): arch=c000003e syscall={digit} pid={digit} "
               f"ppid={digit} comm=\"x\"", ["process.pid", "process.parent.pid"])
    for digit, seq in (("²", "1"), (HUGE, HUGE))
] + [
    ("syslog", f"Mar 12 10:00:00 fw CEF:0|V|P|1|2|n|3|src=192.0.2.1 spt={digit} dpt={digit} dvcpid={digit}",
     ["source.port", "destination.port", "process.pid"]) for digit in ("²", HUGE)
]


@pytest.mark.parametrize(("source", "line", "numbers"), NUMBER_CASES)
def test_odd_digits_and_huge_integers_leave_the_number_empty_and_the_event_stored(
        tmp_path: Path, source: str, line: str, numbers: list[str]) -> None:
    report, store, _ = ingest(tmp_path, source, ("input.log", (line + "\n").encode()))
    assert (report.stored, report.dead_lettered) == (1, 0)
    (row,) = pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA).to_pylist()
    for name in numbers:
        value: Any = row
        for part in name.split("."):
            value = value[part]
        assert value is None, name
    assert row["event"]["original"] == line
