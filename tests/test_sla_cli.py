"""`soc tenants contract` and the SLA columns of `soc cases list|show` on the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from citysoc.settings import Settings
from citysoc.wiring import case_client
from tests.case_api.conftest import build_alert
from tests.test_cases_cli import json_lines, soc

NG = "northgate-hospital"
CONTRACT = """\
calendar:
  kind: business_hours
  timezone: Europe/London
  hours: {mon: "08:00-18:00", tue: "08:00-18:00", wed: "08:00-18:00", thu: "08:00-18:00", fri: "08:00-16:30"}
  holidays: [2026-12-25, 2026-12-28]
targets:
  critical: {acknowledge: 15m, triage: 1h, resolve: 8h}
  high: {acknowledge: 1h, triage: 4h, resolve: 2d}
  medium: {acknowledge: 4h, triage: 8h, resolve: 5d}
  low: {acknowledge: 8h, triage: 2d, resolve: 10d}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG)[0] == 0
    return home


def test_a_members_contract_from_a_file_and_back_to_the_default(home: Path, tmp_path: Path) -> None:
    code, out, _ = soc(home, "tenants", "contract", NG)
    assert code == 0 and "the default contract" in out and "24x7" in out and "15m" in out
    path = tmp_path / "contract.yaml"
    path.write_text(CONTRACT)
    code, out, _ = soc(home, "tenants", "contract", NG, "--contract", str(path), "--json")
    [answer] = json_lines(out)
    assert code == 0 and answer["default"] is False and answer["updated_by"] == "bootstrap-admin"
    assert answer["contract"]["calendar"]["holidays"] == ["2026-12-25", "2026-12-28"]
    assert answer["contract"]["targets"]["critical"] == {"acknowledge": "15m", "triage": "1h", "resolve": "8h"}
    code, out, _ = soc(home, "tenants", "contract", NG)
    assert "business hours, Europe/London" in out and "fri 08:00-16:30" in out and "set by bootstrap-admin" in out

    path.write_text(CONTRACT.replace("triage: 1h", "triage: 1 hour"))
    code, _, err = soc(home, "tenants", "contract", NG, "--contract", str(path))
    assert code == 1 and "422" in err and "not a duration" in err
    path.write_text("- just a list")
    code, _, err = soc(home, "tenants", "contract", NG, "--contract", str(path))
    assert code == 2 and "a contract is a mapping" in err

    code, out, _ = soc(home, "tenants", "contract", NG, "--default", "--json")
    assert code == 0 and json_lines(out)[0]["default"] is True
    code, _, err = soc(home, "tenants", "contract", "no-such-member")
    assert code == 1 and "not found" in err

    school = tmp_path / "school.yaml"
    school.write_text(CONTRACT)
    code, out, _ = soc(home, "tenants", "add", "riverside-school", "--contract", str(school))
    assert code == 0 and "with its SLA contract" in out
    assert json_lines(soc(home, "tenants", "contract", "riverside-school", "--json")[1])[0]["default"] is False


def test_the_queue_shows_the_clock_due_next_and_pauses(home: Path) -> None:
    with case_client(Settings(home=home), role="service") as client:
        client.post_alerts([build_alert(NG, user=user, level=level) for user, level in (("alice", "critical"),
                                                                                         ("bob", "medium"))])
    code, out, _ = soc(home, "cases", "list")
    assert code == 0 and "SLA due" in out and "acknowledge in 1" in out and "acknowledge in 3h" in out
    queue = json_lines(soc(home, "cases", "list", "--json")[1])
    assert [c["severity"] for c in queue] == ["critical", "medium"]
    alice, bob = (c["id"] for c in queue)
    assert soc(home, "cases", "status", str(alice), "awaiting_member")[0] == 0
    code, out, _ = soc(home, "cases", "list")
    assert "paused" in out
    assert [c["id"] for c in json_lines(soc(home, "cases", "list", "--json")[1])] == [bob, alice]
    code, out, _ = soc(home, "cases", "show", str(alice))
    assert code == 0 and "acknowledge 15m: done" in out and "resolve     4h: due" in out
    assert "paused, awaiting the member" in out


def test_soc_metrics_table_and_json(home: Path) -> None:
    with case_client(Settings(home=home), role="service") as client:
        client.post_alerts([build_alert(NG, user=user, level="high") for user in ("alice", "bob")])
    queue = json_lines(soc(home, "cases", "list", "--json")[1])
    assert soc(home, "cases", "assign", str(queue[0]["id"]), "bootstrap-analyst")[0] == 0
    code, out, _ = soc(home, "metrics", "--json")
    rows = json_lines(out)
    assert code == 0 and [(r["tenant_id"], r["severity"], r["cases"]) for r in rows] == [(NG, "high", 2),
                                                                                      (None, "high", 2)]
    assert (rows[0]["acknowledge"]["count"], rows[0]["acknowledge"]["running"]) == (1, 1)
    assert rows[0]["acknowledge"]["p50_seconds"] is not None and rows[0]["triage"]["p50_seconds"] is None
    code, out, _ = soc(home, "metrics")
    assert code == 0 and "MTTA" in out and "MTTR" in out and NG in out and "all members" in out
    assert json_lines(soc(home, "metrics", "--tenant", "riverside-school", "--json")[1]) == []
    code, _, err = soc(home, "metrics", "--since", "2026-12-02", "--until", "2026-12-01")
    assert code == 1 and "since must be before until" in err
    code, _, err = soc(home, "metrics", "--since", "last week")
    assert code == 2 and "ISO-8601" in err
