"""CEF and LEEF payloads from firewalls, VPNs and SIEM forwarders, in a syslog header or bare."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors import ParserOptions, RawRecord, SyslogParser
from collectors.cef import cef_extensions
from collectors.columns import table_docs
from collectors.records import ParsedBatch

NOW = datetime(2024, 3, 12, 11, 0, tzinfo=UTC)


def parse(*lines: str) -> ParsedBatch:
    records = [RawRecord(line.encode(), f"udp 192.0.2.9:514 #{n}", NOW) for n, line in enumerate(lines)]
    return SyslogParser(ParserOptions(year=2024)).parse_records(records, tenant="council", source="syslog")


def one(line: str) -> dict[str, Any]:
    batch = parse(line)
    assert batch.dead == []
    (doc,) = [doc for table in batch.tables.values() for doc in table_docs(table)]
    return doc


def test_elastic_documentation_example_in_rfc3164_and_rfc5424_headers() -> None:
    payload = "CEF:0|Elastic|Vaporware|1.0.0-alpha|18|Web request|low|eventId=3457 msg=hello"
    for line in (f"<189> Jun 18 10:55:50 host {payload}",
                 f"<189>1 2021-06-18T10:55:50.000003Z host app - - - {payload}"):
        doc = one(line)
        assert doc["event"]["dataset"] == "cef.log" and doc["event"]["module"] == "cef"
        assert doc["observer"] == {"vendor": "Elastic", "product": "Vaporware", "version": "1.0.0-alpha"}
        assert (doc["event"]["code"], doc["event"]["severity"], doc["message"]) == ("18", 0, "hello")
        assert doc["cef"]["name"] == "Web request" and doc["cef"]["severity"] == "low"
        assert json.loads(doc["cef"]["extensions"]) == {"eventId": "3457", "msg": "hello"}
        assert doc["host"]["name"] == "host" and doc["@timestamp"].month == 6  # the syslog header's time
        assert doc["event"]["original"] == line


def test_fortigate_admin_login_failure_is_an_authentication_failure() -> None:
    doc = one("<189>Mar 12 10:00:00 fgt60f CEF:0|Fortinet|Fortigate|v7.2.5|0100032002|event:system login failed|7|"
              "deviceExternalId=FGT60F cat=event:system duser=admin src=198.51.100.70 dst=10.0.0.1 outcome=failure "
              "act=login msg=Administrator admin login failed from https(198.51.100.70) because of invalid password")
    assert doc["event"]["outcome"] == "failure" and doc["event"]["category"] == ["authentication"]
    assert (doc["user"]["name"], doc["destination"]["user"]["name"]) == ("admin", "admin")
    assert (doc["source"]["ip"], doc["destination"]["ip"], doc["event"]["action"]) == (
        "198.51.100.70", "10.0.0.1", "login")
    assert doc["message"].startswith("Administrator admin login failed from https(198.51.100.70)")
    assert doc["related"] == {"ip": ["198.51.100.70", "10.0.0.1"], "user": ["admin"]}


def test_device_receipt_time_wins_over_the_syslog_header() -> None:
    epoch = one("Mar 12 10:00:00 pa CEF:0|Palo Alto Networks|PAN-OS|10.1|end|TRAFFIC|1|rt=1710237600123 "
                "src=10.1.1.1 dst=8.8.8.8 spt=51000 dpt=53 proto=UDP act=allow")
    assert epoch["@timestamp"] == datetime(2024, 3, 12, 10, 0, 0, 123000, tzinfo=UTC)
    assert (epoch["source"]["port"], epoch["destination"]["port"], epoch["network"]["transport"]) == (51000, 53, "udp")
    written = one("Mar 12 10:00:00 pa CEF:0|Palo Alto Networks|PAN-OS|10.1|end|TRAFFIC|1|rt=Mar 11 2024 22:15:01 GMT "
                  "src=10.1.1.1")
    assert written["@timestamp"] == datetime(2024, 3, 11, 22, 15, 1, tzinfo=UTC)


def test_escapes_in_header_and_extensions() -> None:
    doc = one(r"Mar 12 10:00:00 h CEF:0|Vendor\|Inc|Pro\\duct|1|42|a \| pipe|High|msg=a\=b with spaces "
              r"cs1=line1\nline2 request=https://x/y?q\=1 shost=client.example.org")
    assert doc["observer"]["vendor"] == "Vendor|Inc" and doc["observer"]["product"] == "Pro\\duct"
    assert doc["cef"]["name"] == "a | pipe" and doc["event"]["severity"] == 7
    assert doc["message"] == "a=b with spaces"
    assert json.loads(doc["cef"]["extensions"])["cs1"] == "line1\nline2"
    assert doc["url"]["original"] == "https://x/y?q=1" and doc["source"]["domain"] == "client.example.org"


def test_a_bare_cef_line_needs_its_own_time() -> None:
    batch = parse("CEF:0|Microsoft|ATA|1.9|SuspiciousLogin|Brute force|8|rt=1710237600000 duser=bob src=203.0.113.3 "
                  "outcome=Failure", "<134>CEF:0|X|Y|1|2|no time at all|3|src=203.0.113.4")
    (doc,) = [doc for table in batch.tables.values() for doc in table_docs(table)]
    assert doc["user"]["name"] == "bob" and doc["event"]["outcome"] == "failure"
    assert doc["@timestamp"] == datetime(2024, 3, 12, 10, 0, tzinfo=UTC)
    (letter,) = batch.dead
    assert letter.origin == "udp 192.0.2.9:514 #1" and "needs a device time" in letter.reason


@pytest.mark.parametrize(("line", "reason"), [
    ("Mar 12 10:00:00 h CEF:0|only|three", "CEF header with fewer than 7"),
    ("Mar 12 10:00:00 h app[7]: CEF:zero|a|b|c|d|e|f|", "CEF version 'zero' is not a number"),
    ("Mar 12 10:00:00 h LEEF:3.0|a|b|c|d|src=1.2.3.4", "LEEF version '3.0' is neither 1.0 nor 2.0"),
])
def test_malformed_payloads_are_dead_letters_with_the_reason(line: str, reason: str) -> None:
    batch = parse(line, "Mar 12 10:00:01 h app: fine")
    assert batch.events == 1
    (letter,) = batch.dead
    assert letter.reason.startswith(reason) and letter.raw == line


def test_leef_1_with_tabs_as_qradar_documents_it() -> None:
    doc = one("Mar 12 10:00:00 exch LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\t"
              "sev=5\tcat=anomaly\tsrcPort=81\tdstPort=21\tusrName=joe.black")
    assert doc["event"]["dataset"] == "leef.log"
    assert doc["observer"] == {"vendor": "Microsoft", "product": "MSExchange", "version": "4.0 SP1"}
    assert (doc["event"]["code"], doc["event"]["severity"]) == ("15345", 5)
    assert (doc["source"]["ip"], doc["source"]["port"], doc["destination"]["port"]) == ("192.0.2.0", 81, 21)
    assert doc["user"]["name"] == "joe.black"


@pytest.mark.parametrize("delimiter", ["^", "x5E", "0x5e"])
def test_leef_2_with_its_own_delimiter(delimiter: str) -> None:
    doc = one(f"LEEF:2.0|Lancope|StealthWatch|1.0|41|{delimiter}|src=192.0.2.10^dst=172.50.123.1^sev=5^"
              "cat=Authentication failure^usrName=carol^outcome=failure^devTime=Mar 12 2024 09:59:58")
    assert doc["@timestamp"] == datetime(2024, 3, 12, 9, 59, 58, tzinfo=UTC)
    assert (doc["user"]["name"], doc["source"]["ip"]) == ("carol", "192.0.2.10")
    assert doc["event"]["outcome"] == "failure" and doc["event"]["category"] == ["authentication"]
    assert json.loads(doc["leef"]["extensions"])["cat"] == "Authentication failure"


def test_cef_extension_scan_is_linear() -> None:
    import time

    for text in ("a" * 100_000, "a= " * 30_000, "k=" + "v " * 50_000, "\\=" * 50_000):
        started = time.process_time()
        cef_extensions(text)
        assert time.process_time() - started < 0.5, text[:8]
