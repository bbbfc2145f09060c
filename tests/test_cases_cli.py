"""`soc cases`: an analyst works a case from the queue to closure on the embedded default (in-process API,
SQLite under SOC_HOME), and every step reads back through the API and its audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citysoc.settings import Settings
from citysoc.store import ParquetEventStore
from citysoc.wiring import case_client
from correlator.engine.alerts import iso_from_micros
from tests.case_api.conftest import build_alert
from tests.cli_runner import json_lines, run_soc

NG = "northgate-hospital"


def soc(home: Path, *args: str) -> tuple[int, str, str]:
    return run_soc(home, *args)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG)[0] == 0
    with case_client(Settings(home=home), role="service") as client:
        client.post_alerts([build_alert(NG, user=user, level=level, minutes=minutes)
                            for user, level, minutes in (("alice", "high", 0), ("bob", "medium", 5),
                                                         ("carol", "high", 9))])
    return home


def test_an_analyst_works_a_case_from_the_queue_to_closure(home: Path) -> None:
    code, out, _ = soc(home, "cases", "list", "--json")
    queue = json_lines(out)
    assert code == 0 and [c["group_key"] for c in queue] == ["user.name=alice", "user.name=carol", "user.name=bob"]
    alice, carol, bob = (c["id"] for c in queue)

    code, out, _ = soc(home, "cases", "show", str(alice))
    assert code == 0
    assert "T1562.008" in out and "christophe" not in out and "alice" in out and "AMBER" in out

    assert soc(home, "cases", "assign", str(alice), "bootstrap-analyst")[0] == 0
    code, _, err = soc(home, "cases", "assign", str(alice), "mallory")
    assert code == 1 and "unknown assignee 'mallory'" in err
    assert soc(home, "cases", "status", str(alice), "in_progress")[0] == 0
    assert soc(home, "cases", "comment", str(alice), "Account locked, calling the user")[0] == 0
    code, _, err = soc(home, "cases", "status", str(alice), "closed")
    assert code == 1 and "resolution" in err
    code, out, _ = soc(home, "cases", "close", str(alice), "--resolution", "true_positive", "--json")
    assert code == 0 and json_lines(out) == [{"case_id": alice, "ok": True, "status": "closed", "detail": ""}]

    code, out, _ = soc(home, "cases", "merge", str(carol), str(bob))
    assert code == 0 and "2 alert(s)" in out

    open_ids = [c["id"] for c in json_lines(soc(home, "cases", "list", "--json")[1])]
    assert open_ids == [carol]
    every = {c["id"]: c for c in json_lines(soc(home, "cases", "list", "--all", "--json")[1])}
    assert (every[alice]["status"], every[alice]["resolution"]) == ("closed", "true_positive")
    assert (every[bob]["resolution"], every[bob]["merged_into_id"]) == ("duplicate", carol)

    [shown] = json_lines(soc(home, "cases", "show", str(alice), "--json")[1])
    assert shown["assignee"] == "bootstrap-analyst"
    assert [c["body"] for c in shown["comments"]] == ["Account locked, calling the user"]
    assert [e["action"] for e in shown["events"]] == [
        "created", "alert_added", "assigned", "status_changed", "commented", "status_changed"]
    assert all(e["actor"] == "bootstrap-analyst" for e in shown["events"][2:])
    code, _, err = soc(home, "cases", "show", "2147483648")
    assert code == 2 and "Usage" in err  # out of range: a usage error, before any request


def test_cases_show_evidence_prints_the_raw_events_of_the_alerts(home: Path, corpora: Path) -> None:
    code, _, err = soc(home, "ingest", "--tenant", NG, "--source", "syslog", "--year", "2024",
                       str(corpora / "loghub" / "OpenSSH_2k.log"))
    assert code == 0, err
    lake = ParquetEventStore(Settings(home=home).events_dir).arrow_dataset("system.auth", tenants=[NG])
    assert lake is not None
    rows = sorted(lake.to_table().to_pylist(), key=lambda row: (row["@timestamp"], row["event"]["id"]))[:3]
    first = (rows[0]["@timestamp"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    alert = build_alert(NG, user=None, level="high", entities={"source.ip": ["173.234.31.186"]},
                        event={"ids": [row["event"]["id"] for row in rows], "dataset": "system.auth"})
    alert["@timestamp"] = iso_from_micros(first)
    with case_client(Settings(home=home), role="service") as client:
        [case_id] = client.post_alerts([alert])["cases"]

    code, out, _ = soc(home, "cases", "show", str(case_id), "--evidence", "--limit", "2")
    assert code == 0
    assert "events 1..2 of 3" in out and "more: --offset 2" in out
    assert rows[0]["event"]["original"] in out and rows[1]["event"]["original"] in out
    assert rows[2]["event"]["original"] not in out
    code, out, _ = soc(home, "cases", "show", str(case_id), "--events", "--offset", "2", "--json")
    assert code == 0 and [item["event"]["event"]["original"] for item in json_lines(out)] == [
        rows[2]["event"]["original"]]
