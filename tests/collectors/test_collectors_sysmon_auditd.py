"""Sysmon for Linux (via syslog) and auditd (audit.log and via syslog) -> ECS, through the real parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.schema import to_row
from citysoc.store.parquet import ParquetEventStore
from collectors import AuditdParser, ParsedEvent, ParserOptions, SyslogParser
from collectors.ingest import ingest_files
from tests.collectors.samples import (
    AUDIT_GETCAP,
    AUDIT_MEMFD_RAW,
    AUDIT_SPLIT_ENRICHED,
    AUDIT_USER_LOGIN_FAILED,
    hexed,
    sysmon_line,
    sysmon_xml,
)

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def parse(parser_class: type[SyslogParser] | type[AuditdParser], tmp_path: Path,
          *lines: str) -> tuple[list[dict[str, Any]], list[DeadLetter]]:
    path = tmp_path / "input.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    events: list[dict[str, Any]] = []
    letters: list[DeadLetter] = []
    for item in parser_class(ParserOptions(year=2026, now=NOW)).parse(path, tenant="council", source="x"):
        if isinstance(item, ParsedEvent):
            assert item.dataset == item.doc["event"]["dataset"]
            to_row(item.doc)  # only schema fields
            events.append(item.doc)
        else:
            letters.append(item)
    return events, letters


PROCESS = sysmon_line(1, {
    "Image": "/usr/bin/base64", "CommandLine": "base64 -d /tmp/x.b64", "CurrentDirectory": "/tmp",
    "User": "alice", "LogonId": "1000",
    "Hashes": "SHA256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
    "ParentProcessGuid": "{6a1b2c3d-8e4f-65e1-0c1d-2a3b11111111}", "ParentProcessId": "4200",
    "ParentImage": "/usr/bin/bash", "ParentCommandLine": "-bash", "ParentUser": "alice",
})


def test_sysmon_process_creation_maps_like_elastic(tmp_path: Path) -> None:
    (doc,), letters = parse(SyslogParser, tmp_path, PROCESS)
    assert letters == []
    assert doc["event"]["dataset"] == "sysmon_linux.log"
    assert doc["event"]["module"] == "sysmon_linux"
    assert doc["event"]["code"] == "1" and doc["winlog"]["event_id"] == "1"
    assert doc["event"]["category"] == ["process"] and doc["event"]["type"] == ["start"]
    assert doc["event"]["provider"] == "Linux-Sysmon"
    assert doc["@timestamp"] == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)  # UtcTime
    assert doc["event"]["created"] == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)  # TimeCreated
    assert doc["process"] == {
        "entity_id": "{6a1b2c3d-8e4f-65e1-0c1d-2a3b00000000}", "pid": 4242, "executable": "/usr/bin/base64",
        "name": "base64", "command_line": "base64 -d /tmp/x.b64", "working_directory": "/tmp",
        "hash": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
        "parent": {"entity_id": "{6a1b2c3d-8e4f-65e1-0c1d-2a3b11111111}", "pid": 4200,
                   "executable": "/usr/bin/bash", "name": "bash", "command_line": "-bash"},
    }
    assert doc["user"] == {"name": "alice"}
    assert doc["host"]["name"] == "web01"
    assert doc["log"]["syslog"]["appname"] == "sysmon"  # the shipper stays visible
    data = json.loads(doc["winlog"]["event_data"])
    assert data["LogonId"] == "1000" and data["ParentUser"] == "alice" and data["Image"] == "/usr/bin/base64"
    assert "RuleName" not in data and "FileVersion" not in data  # `-` is empty, as Elastic drops it
    assert doc["event"]["original"] == PROCESS


def test_sysmon_network_file_and_delete_events(tmp_path: Path) -> None:
    network = sysmon_line(3, {
        "Image": "/usr/bin/curl", "User": "www-data", "Protocol": "tcp", "Initiated": "true", "SourceIsIpv6": "false",
        "SourceIp": "10.0.0.5", "SourcePort": "51234", "DestinationIsIpv6": "false", "DestinationIp": "198.51.100.7",
        "DestinationHostname": "evil.example", "DestinationPort": "4444",
    })
    created = sysmon_line(11, {"Image": "/usr/bin/tee", "TargetFilename": "/etc/sudoers.d/backdoor.conf",
                               "User": "root"})
    deleted = sysmon_line(23, {"Image": "/usr/bin/rm", "TargetFilename": "/var/log/auth.log", "User": "root",
                               "IsExecutable": "false", "Archived": "false"})
    (net, new, gone), letters = parse(SyslogParser, tmp_path, network, created, deleted)
    assert letters == []
    assert net["source"] == {"ip": "10.0.0.5", "address": "10.0.0.5", "port": 51234}
    assert net["destination"] == {"ip": "198.51.100.7", "address": "198.51.100.7", "port": 4444,
                                  "domain": "evil.example"}
    assert net["network"] == {"transport": "tcp", "direction": "egress", "type": "ipv4"}
    assert net["event"]["category"] == ["network"] and net["related"]["ip"] == ["10.0.0.5", "198.51.100.7"]
    assert json.loads(net["winlog"]["event_data"])["Initiated"] == "true"
    assert new["file"] == {"path": "/etc/sudoers.d/backdoor.conf", "name": "backdoor.conf",
                           "directory": "/etc/sudoers.d", "extension": "conf"}
    assert new["event"]["type"] == ["creation"] and new["process"]["executable"] == "/usr/bin/tee"
    assert gone["event"]["code"] == "23" and gone["event"]["type"] == ["deletion"]
    assert gone["file"]["path"] == "/var/log/auth.log"


@pytest.mark.parametrize(("message", "reason"), [
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
     "<Event><System><EventID>1</EventID></System><EventData><Data Name=\"Image\">&lol2;</Data></EventData></Event>",
     "markup declaration"),
    ("<Event><System><EventID>1</EventID></System><EventData><Data Name=\"Image\">/x</Data>", "not well-formed"),
    ("<Event><System></System></Event>", "without an EventID"),
    ("<Event>" + "<Data>x</Data>" * 30000 + "</Event>", "larger than"),
])
def test_hostile_or_broken_sysmon_xml_is_dead_lettered(tmp_path: Path, message: str, reason: str) -> None:
    events, (letter,) = parse(SyslogParser, tmp_path, f"Mar  1 12:00:00 web01 sysmon[1234]: {message}")
    assert events == []
    assert reason in letter.reason


def test_xml_from_another_program_stays_syslog(tmp_path: Path) -> None:
    (doc,), _ = parse(SyslogParser, tmp_path, f"Mar  1 12:00:00 web01 myapp[9]: {sysmon_xml(1, {'Image': '/x'})}")
    assert doc["event"]["dataset"] == "system.syslog" and "winlog" not in doc


def test_audit_log_records_one_event_per_record(tmp_path: Path) -> None:
    events, letters = parse(AuditdParser, tmp_path, *AUDIT_GETCAP, "this is not an audit record")
    assert [letter.reason.split(" (")[0] for letter in letters] == ["not an audit record"]
    assert [e["auditd"]["log"]["record_type"] for e in events] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE",
                                                                   "EOE"]
    assert {e["auditd"]["log"]["sequence"] for e in events} == {8811}
    assert {e["@timestamp"] for e in events} == {datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)}
    assert {e["event"]["dataset"] for e in events} == {"auditd.log"}
    syscall, execve, cwd, path, proctitle, _ = events
    fields = json.loads(syscall["auditd"]["log"]["fields"])
    assert fields["syscall"] == "59" and fields["SYSCALL"] == "execve" and fields["ARCH"] == "x86_64"  # RAW: named
    assert fields["comm"] == "getcap" and fields["key"] == "exec" and fields["a0"] == "5611d0c1e2a0"  # not decoded
    assert syscall["event"]["action"] == "syscall" and syscall["event"]["outcome"] == "success"
    assert syscall["process"] == {"pid": 3342, "parent": {"pid": 3301}, "executable": "/usr/sbin/getcap",
                                  "name": "getcap"}
    assert syscall["user"] == {"id": "1000"}
    assert execve["process"] == {"args": ["getcap", "-r", "/"], "command_line": "getcap -r /"}
    assert cwd["process"] == {"working_directory": "/home/alice"}
    assert path["file"] == {"path": "/usr/sbin/getcap"}
    assert json.loads(path["auditd"]["log"]["fields"])["nametype"] == "NORMAL"
    assert proctitle["process"] == {"title": "getcap -r /"}  # hex, NUL-separated: decoded


def test_enriched_format_hex_arguments_and_nested_msg(tmp_path: Path) -> None:
    rsyslog_escaped = AUDIT_SPLIT_ENRICHED[0].replace("\x1d", "#035")  # how rsyslog writes 0x1d
    events, letters = parse(AuditdParser, tmp_path, *AUDIT_SPLIT_ENRICHED, rsyslog_escaped, AUDIT_USER_LOGIN_FAILED,
                            "node=db01 " + AUDIT_MEMFD_RAW)
    assert letters == []
    syscall, execve, escaped, login, memfd = events
    for record in (syscall, escaped):
        fields = json.loads(record["auditd"]["log"]["fields"])
        assert fields["SYSCALL"] == "execve" and fields["AUID"] == "alice" and fields["key"] == "(null)"
    assert json.loads(execve["auditd"]["log"]["fields"])["a3"] == "/tmp/my db.sql"
    assert execve["process"]["args"] == ["split", "-b", "1M", "/tmp/my db.sql"]
    login_fields = json.loads(login["auditd"]["log"]["fields"])
    assert login_fields["op"] == "login" and login_fields["res"] == "failed" and "msg" not in login_fields
    assert login["event"]["outcome"] == "failure" and login["user"]["name"] == "admin"
    assert login["source"] == {"address": "203.0.113.50", "ip": "203.0.113.50"}
    assert memfd["host"]["name"] == "db01"
    assert json.loads(memfd["auditd"]["log"]["fields"])["SYSCALL"] == "memfd_create"


def test_long_execve_argument_in_chunks_and_kernel_form(tmp_path: Path) -> None:
    chunked = ('type=EXECVE msg=audit(1772366400.000:1): argc=2 a0="python3" a1_len=12 '
               f'a1[0]={hexed("print(")} a1[1]={hexed("1 + 1)")}')
    kernel = ("audit: type=1300 audit(1772366400.000:2): arch=c000003e syscall=101 success=no exit=-1 a0=10 "
              'a1=1 a2=0 a3=0 items=0 ppid=1 pid=77 uid=0 comm="gdb" exe="/usr/bin/gdb" key="ptrace"')
    (execve, ptrace), letters = parse(AuditdParser, tmp_path, chunked, kernel)
    assert letters == []
    assert execve["process"]["args"] == ["python3", "print(1 + 1)"]
    assert ptrace["auditd"]["log"]["record_type"] == "SYSCALL" and ptrace["event"]["outcome"] == "failure"
    assert json.loads(ptrace["auditd"]["log"]["fields"])["SYSCALL"] == "ptrace"


def test_syslog_routes_audisp_records_to_auditd(tmp_path: Path) -> None:
    lines = [f"Mar  1 12:00:00 web01 audisp-syslog: {record}" for record in AUDIT_GETCAP[:2]]
    (syscall, execve), letters = parse(SyslogParser, tmp_path, *lines)
    assert letters == []
    assert syscall["event"]["dataset"] == execve["event"]["dataset"] == "auditd.log"
    assert syscall["@timestamp"] == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)  # the record's own time
    assert syscall["process"]["name"] == "getcap"  # not the shipper audisp-syslog
    assert syscall["log"]["syslog"]["appname"] == "audisp-syslog"
    assert execve["message"] == AUDIT_GETCAP[1]


def test_ingest_source_auditd_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text("\n".join([*AUDIT_GETCAP, AUDIT_MEMFD_RAW]) + "\n", encoding="utf-8")
    store = ParquetEventStore(tmp_path / "events")
    letters = DeadLetterStore(tmp_path / "deadletter")
    first = ingest_files(tenant="council", source="auditd", paths=[path], store=store, dead_letters=letters)
    again = ingest_files(tenant="council", source="auditd.log", paths=[path], store=store, dead_letters=letters)
    assert first.stored == 7 and first.stored_by_dataset == {"auditd.log": 7}
    assert again.stored == 0 and again.duplicates == 7
