"""Syslog parsing: the real OpenSSH corpus, RFC 5424/3164 samples, the missing-year rule, dead letters."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from citysoc.deadletter import DeadLetter
from citysoc.ids import Occurrences, event_ids
from citysoc.schema import to_row
from collectors import ParsedEvent, ParserOptions, SyslogParser
from collectors.syslog import NOT_SYSLOG

Parsed = tuple[Path, list[dict[str, Any]], list[DeadLetter]]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def parse(path: Path, **options: Any) -> tuple[list[dict[str, Any]], list[DeadLetter], SyslogParser]:
    parser = SyslogParser(ParserOptions(now=NOW, **options))
    events: list[dict[str, Any]] = []
    letters: list[DeadLetter] = []
    for item in parser.parse(path, tenant="council", source="syslog"):
        if isinstance(item, ParsedEvent):
            assert item.dataset == item.doc["event"]["dataset"]
            to_row(item.doc)  # only schema fields
            events.append(item.doc)
        else:
            letters.append(item)
    return events, letters, parser


def write_lines(tmp_path: Path, *lines: str, name: str = "messages.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def openssh(corpora: Path) -> Parsed:
    path = corpora / "loghub" / "OpenSSH_2k.log"
    events, letters, _ = parse(path, year=2024)
    return path, events, letters


def test_openssh_corpus_every_line_is_an_auth_event(openssh: Parsed) -> None:
    path, events, letters = openssh
    lines = path.read_text().splitlines()
    assert len(lines) == 2000
    assert letters == []
    assert len(events) == 2000
    assert {doc["event"]["dataset"] for doc in events} == {"system.auth"}
    assert {doc["event"]["module"] for doc in events} == {"system"}
    assert [doc["event"]["original"] for doc in events] == lines  # nothing in it looks like a secret
    assert len({doc["event"]["id"] for doc in events}) == 2000
    assert {doc["host"]["name"] for doc in events} == {"LabSZ"}
    assert {doc["process"]["name"] for doc in events} == {"sshd"}
    first = events[0]
    assert first["@timestamp"] == datetime(2024, 12, 10, 6, 55, 46, tzinfo=UTC)
    assert first["process"]["pid"] == 24200
    assert first["log"]["syslog"] == {"hostname": "LabSZ", "appname": "sshd", "procid": "24200"}


def test_openssh_failed_passwords_and_source_ips_match_a_grep(
    openssh: Parsed,
) -> None:
    path, events, _ = openssh
    text = path.read_text()
    failed_lines = [line for line in text.splitlines() if "Failed password for" in line]
    failed = [doc for doc in events
              if doc.get("system", {}).get("auth", {}).get("ssh") == {"event": "Failed", "method": "password"}]
    assert len(failed) == len(failed_lines) == 520
    assert all(doc["event"]["action"] == "ssh_login" and doc["event"]["outcome"] == "failure" for doc in failed)
    grep_ips = {re.search(r" from (\S+) port \d+", line).group(1) for line in failed_lines}  # type: ignore[union-attr]
    assert {doc["source"]["ip"] for doc in failed} == grep_ips
    all_ips = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert {doc["source"]["ip"] for doc in events if "ip" in doc.get("source", {})} == all_ips
    for doc in failed:
        assert doc["related"]["ip"] == [doc["source"]["ip"]]
        assert doc["related"]["user"] == [doc["user"]["name"]]


def test_openssh_outcomes_per_ssh_event(openssh: Parsed) -> None:
    _, events, _ = openssh
    outcomes = Counter(
        (doc.get("system", {}).get("auth", {}).get("ssh", {}).get("event"), doc["event"].get("action"),
         doc["event"].get("outcome"))
        for doc in events
    )
    assert outcomes[("Accepted", "ssh_login", "success")] == 1
    assert outcomes[("Invalid", "invalid_user", "failure")] == 113  # 112 + the one with a double space
    accepted = next(doc for doc in events if doc["event"].get("outcome") == "success")
    assert accepted["user"]["name"] == "fztu" and accepted["source"]["port"] > 0
    pam = [doc for doc in events if doc["message"].startswith("pam_unix(sshd:auth): authentication failure")]
    assert pam and all(doc["event"]["outcome"] == "failure" and "address" in doc["source"] for doc in pam)
    # rhost is sometimes a host name: kept as source.address, never forced into source.ip
    by_name = [doc for doc in pam if "ip" not in doc["source"]]
    assert "ec2-52-80-34-196.cn-north-1.compute.amazonaws.com.cn" in {doc["source"]["address"] for doc in by_name}
    assert any(doc.get("user", {}).get("name") == "root" for doc in pam)


@pytest.mark.parametrize(
    ("reference", "expected_year"),
    [
        (datetime(2025, 1, 3, tzinfo=UTC), 2024),  # December lines read in January: previous year
        (datetime(2024, 12, 31, 23, 0, tzinfo=UTC), 2024),
        (datetime(2024, 12, 9, 12, 0, tzinfo=UTC), 2024),  # within one day after the reference: same year
        (datetime(2024, 12, 8, 0, 0, tzinfo=UTC), 2023),  # more than a day ahead: previous year
    ],
)
def test_missing_year_follows_the_reference_time(tmp_path: Path, reference: datetime, expected_year: int) -> None:
    path = write_lines(tmp_path, "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
    events, _, _ = parse(path, reference=reference)
    assert events[0]["@timestamp"] == datetime(expected_year, 12, 10, 6, 55, 46, tzinfo=UTC)


def test_missing_year_defaults_to_the_file_modification_time(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "Dec 31 23:59:59 gw kernel: year end", "Jan  1 00:00:01 gw kernel: new year")
    written = datetime(2025, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    os.utime(path, (written, written))
    events, _, _ = parse(path)
    assert [doc["@timestamp"] for doc in events] == [
        datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)]


def test_explicit_year_and_time_zone(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "Jun  3 10:00:00 gw kernel: summer")
    events, _, _ = parse(path, year=2019, tz=timezone(timedelta(hours=2)))
    assert events[0]["@timestamp"] == datetime(2019, 6, 3, 8, 0, tzinfo=UTC)


def test_rfc5424_line(tmp_path: Path) -> None:
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 4123 ID47 '
            '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][meta seq="a\\"b\\]"] '
            'An application event log entry')
    events, letters, _ = parse(write_lines(tmp_path, line))
    assert letters == []
    doc = events[0]
    assert doc["@timestamp"] == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert doc["message"] == "An application event log entry"
    assert doc["host"] == {"hostname": "mymachine.example.com", "name": "mymachine.example.com"}
    assert doc["process"] == {"name": "evntslog", "pid": 4123}
    syslog = doc["log"]["syslog"]
    assert (syslog["priority"], syslog["facility"], syslog["severity"]) == (
        165, {"code": 20, "name": "local4"}, {"code": 5, "name": "Notice"})
    assert (syslog["version"], syslog["appname"], syslog["procid"], syslog["msgid"]) == (1, "evntslog", "4123", "ID47")
    assert json.loads(syslog["structured_data"]) == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "meta": {"seq": 'a"b]'},
    }
    assert doc["event"]["dataset"] == "system.syslog"


def test_rfc5424_nil_values_and_offset(tmp_path: Path) -> None:
    line = ("<38>1 2024-03-01T10:00:00.5+01:00 web01 sshd - - - "
            "Accepted publickey for deploy from 10.0.0.5 port 50022 ssh2: ED25519 SHA256:abc")
    events, _, _ = parse(write_lines(tmp_path, line))
    doc = events[0]
    assert doc["@timestamp"] == datetime(2024, 3, 1, 9, 0, 0, 500000, tzinfo=UTC)
    assert "procid" not in doc["log"]["syslog"] and "structured_data" not in doc["log"]["syslog"]
    assert doc["event"]["dataset"] == "system.auth"  # facility auth (4) and program sshd
    assert doc["system"]["auth"]["ssh"] == {
        "event": "Accepted", "method": "publickey", "signature": "ED25519 SHA256:abc"}
    assert (doc["user"]["name"], doc["source"]["ip"], doc["source"]["port"]) == ("deploy", "10.0.0.5", 50022)
    assert doc["event"]["outcome"] == "success" and doc["event"]["category"] == ["authentication"]


def test_rfc3164_line(tmp_path: Path) -> None:
    line = "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"
    events, letters, _ = parse(write_lines(tmp_path, line), year=2024)
    assert letters == []
    doc = events[0]
    assert doc["@timestamp"] == datetime(2024, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert doc["message"] == "'su root' failed for lonvick on /dev/pts/8"
    assert doc["process"] == {"name": "su", "pid": 123}
    syslog = doc["log"]["syslog"]
    assert syslog["facility"] == {"code": 4, "name": "auth"} and syslog["severity"] == {"code": 2, "name": "Critical"}
    assert doc["event"]["dataset"] == "system.auth"
    assert doc["event"]["original"] == line


def test_non_auth_program_is_system_syslog_and_pam_lines_are_auth(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        "Mar  4 08:00:01 web01 CRON[2210]: (root) CMD (run-parts /etc/cron.hourly)",
        "Mar  4 08:00:01 web01 CRON[2210]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        "Mar  4 08:00:02 web01 systemd[1]: Started Session c42 of User alice.",
        "Mar  4 08:00:03 web01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
    )
    events, _, _ = parse(path, year=2024)
    assert [doc["event"]["dataset"] for doc in events] == ["system.syslog", "system.auth", "system.syslog",
                                                          "system.auth"]
    assert events[1]["user"]["name"] == "root"
    assert events[3]["user"]["name"] == "alice" and events[3]["related"]["user"] == ["alice", "root"]
    assert "PWD=/home/alice" in events[3]["message"]  # the working directory is not mistaken for a secret


def test_garbage_lines_are_dead_letters_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(
        b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"
        b"\n   \n"
        b"this is not syslog at all\n"
        b"Dec 10 06:55:47 LabSZ sshd[24201]: Invalid user caf\xe9 from 173.234.31.186\r\n"
    )
    events, letters, parser = parse(path, year=2024)
    assert len(events) == 2
    assert events[1]["user"]["name"] == "caf\ufffd"  # non-UTF-8 replaced, still parsed
    assert parser.skipped == 2
    assert [(letter.origin, letter.reason, letter.raw) for letter in letters] == [
        (f"{path}:4", NOT_SYSLOG, "this is not syslog at all")]


def test_gzip_rotated_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "auth.log.2.gz"
    path.write_bytes(gzip.compress(b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"))
    events, letters, _ = parse(path, year=2024)
    assert len(events) == 1 and letters == []


def test_passwords_in_messages_are_redacted(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        "Mar  4 08:00:00 app01 myapp[77]: login attempt user=bob password=hunter2 result=ok",
        'Mar  4 08:00:01 app01 myapp[77]: db connect pass: "s3cr et" token=abc123;x',
    )
    events, _, _ = parse(path, year=2024)
    stored = json.dumps(events, default=str)
    for secret in ("hunter2", "s3cr et", "abc123"):
        assert secret not in stored
    assert events[0]["message"] == "login attempt user=bob password=[REDACTED] result=ok"
    assert events[0]["event"]["original"].endswith("password=[REDACTED] result=ok")


def test_event_ids_are_stable_and_count_repeated_lines(tmp_path: Path) -> None:
    line = "Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]"
    path = write_lines(tmp_path, line, line, "Dec 10 06:55:47 LabSZ sshd[24200]: other")
    first, _, _ = parse(path, year=2024)
    again, _, _ = parse(path, year=2024)
    ids = [doc["event"]["id"] for doc in first]
    assert ids == [doc["event"]["id"] for doc in again]
    moment = int(datetime(2024, 12, 10, 6, 55, 46, tzinfo=UTC).timestamp() * 1_000_000)
    assert ids[:2] == event_ids(tenant="council", source="syslog", timestamps_us=[moment, moment],
                                contents=[line.encode()] * 2, occurrences=Occurrences())
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2024-12-10T06:55:46.123456+01:00 web01 nginx[88]: started",
         {"@timestamp": datetime(2024, 12, 10, 5, 55, 46, 123456, tzinfo=UTC),
          "process": {"name": "nginx", "pid": 88}}),
        # RFC 3164 4.1.3: the TAG ends at the first non-alphanumeric character (rsyslog reads it alike)
        ("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
         {"@timestamp": datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC), "message": "the BFG!",
          "process": {"name": "Use"}}),
        ("<165>1 2003-10-11T22:14:15Z host app - - - \ufeffhello",
         {"message": "hello"}),
    ],
)
def test_other_accepted_forms(tmp_path: Path, line: str, expected: dict[str, Any]) -> None:
    events, letters, _ = parse(write_lines(tmp_path, line), year=2024)
    assert letters == []
    assert {key: events[0][key] for key in expected} == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("<200>Oct 11 22:14:15 host prog: out of range", "syslog priority 200 is out of range (0-191)"),
        ("<165>1 - host app - - - no time", "RFC 5424 line without a timestamp (NILVALUE)"),
        ("Feb 29 10:00:00 host prog: not in 2023", "no valid date for month 2 day 29 in 2023"),
        ("10:00:00 host prog: no date", NOT_SYSLOG),
    ],
)
def test_lines_that_cannot_be_placed_are_dead_letters(tmp_path: Path, line: str, reason: str) -> None:
    events, letters, _ = parse(write_lines(tmp_path, line), year=2023)
    assert events == []
    assert letters[0].reason.startswith(reason)
