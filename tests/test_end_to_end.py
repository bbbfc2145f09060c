"""ingest -> detect -> cases through the `soc` CLI, on real public data, twice.

The second pass must change nothing: the lake, the alert store and the case API are all idempotent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from citysoc.cli import app

pytestmark = pytest.mark.slow

STOP_LOGGING_EVENT = "10163ed2-2253-469d-a5ee-cbc6651f8934"
CLOUDTRAIL_IMPORTANT_CHANGE = "4db60cc0-36fb-42b7-9b58-a5b53019fb74"
COUNCIL, HOSPITAL = "riverside-council", "northgate-hospital"


def soc(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def json_lines(output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def pipeline_home(tmp_path_factory: pytest.TempPathFactory, corpora: Path, spark: object) -> Path:
    home = tmp_path_factory.mktemp("e2e") / "soc"
    return home


def run_pipeline(corpora: Path) -> None:
    stratus = corpora / "stratus"
    soc("ingest", "--tenant", COUNCIL, "--source", "aws.cloudtrail",
        str(stratus / "aws.defense-evasion.cloudtrail-stop.json"),
        str(stratus / "aws.persistence.iam-backdoor-user.json"),
        str(stratus / "aws.initial-access.console-login-without-mfa.json"))
    soc("ingest", "--tenant", HOSPITAL, "--source", "syslog", "--year", "2024",
        str(corpora / "loghub" / "OpenSSH_2k.log"))
    soc("detect", "--rules", str(corpora / "sigmahq" / "rules" / "cloud" / "aws"),
        "--rules", str(corpora / "sigmahq" / "rules" / "linux"))


def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts = sorted(json_lines(soc("alerts", "list", "--json")), key=lambda a: a["id"])
    cases = sorted(json_lines(soc("cases", "list", "--json")), key=lambda c: c["id"])
    return alerts, cases


def test_ingest_detect_cases_twice(pipeline_home: Path, corpora: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_HOME", str(pipeline_home))
    soc("tenants", "add", COUNCIL, "--name", "Riverside City Council")
    soc("tenants", "add", HOSPITAL, "--name", "Northgate Hospital")
    assert {t["id"] for t in json_lines(soc("tenants", "list", "--json"))} == {COUNCIL, HOSPITAL}

    run_pipeline(corpora)
    alerts, cases = snapshot()

    # The SigmaHQ rule fires on the StopLogging record, in the council's tenant only.
    stop_alerts = [a for a in alerts if a["rule"]["id"] == CLOUDTRAIL_IMPORTANT_CHANGE]
    assert [a["event"]["ids"] for a in stop_alerts] == [[STOP_LOGGING_EVENT]]
    assert stop_alerts[0]["organization"]["id"] == COUNCIL
    assert stop_alerts[0]["rule"]["title"] == "AWS CloudTrail Important Change"
    assert stop_alerts[0]["rule"]["level"] == "medium"
    assert stop_alerts[0]["@timestamp"].startswith("2024-07-31T13:06:24")
    for alert in alerts:
        assert {"id", "rule", "organization", "@timestamp", "event"} <= alert.keys()
        assert alert["organization"]["id"] in {COUNCIL, HOSPITAL}
        assert alert["event"]["ids"], alert

    # The project's SSH brute-force correlation fires on the real OpenSSH sample, in the hospital only.
    brute = [a for a in alerts if "brute" in a["rule"]["title"].lower()]
    assert brute and {a["organization"]["id"] for a in brute} == {HOSPITAL}
    assert all(len(a["event"]["ids"]) >= 10 for a in brute)

    # Cases: every alert sits in a case of its own tenant.
    assert cases and {c["tenant_id"] for c in cases} == {COUNCIL, HOSPITAL}
    assert sum(c["alert_count"] for c in cases) == len(alerts)

    # Second run over the same inputs: nothing new anywhere.
    run_pipeline(corpora)
    assert snapshot() == (alerts, cases)


def test_demo_from_empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: object) -> None:
    """`soc demo` without the shared corpora: the generated scenario alone yields the expected cases."""
    home = tmp_path / "demo-home"
    monkeypatch.setenv("SOC_HOME", str(home))
    output = soc("demo", "--no-corpora")
    assert "case queue" in output.lower()
    cases = json_lines(soc("cases", "list", "--json"))
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        by_tenant.setdefault(case["tenant_id"], []).append(case)
    assert set(by_tenant) == {"elm-street-gp", "northgate-hospital", "riverside-council"}
    # The brute force at the GP practice groups under the attacker's address.
    assert any("203.0.113.77" in case["group_key"] for case in by_tenant["elm-street-gp"])
    # The same address probed the hospital: one city-wide campaign links the two members' cases.
    assert "city-wide campaigns" in output.lower()
    [campaign] = json_lines(soc("campaigns", "list", "--json"))
    assert campaign["indicator"] == {"kind": "ip", "value": "203.0.113.77"}
    assert campaign["tenants"] == ["elm-street-gp", "northgate-hospital"]
    linked = {case["tenant_id"] for case in cases if case["id"] in campaign["case_ids"]}
    assert linked == {"elm-street-gp", "northgate-hospital"}
    # The council's trail being stopped and the backdoor key are both alerts of the council's cases.
    council_alerts = json_lines(soc("alerts", "list", "--json", "--tenant", "riverside-council"))
    actions = {a["rule"]["title"] for a in council_alerts}
    assert len(actions) >= 2, actions
    assert all(a["organization"]["id"] == "riverside-council" for a in council_alerts)
    # Idempotent: a second demo adds nothing.
    soc("demo", "--no-corpora")
    assert json_lines(soc("cases", "list", "--json")) == cases
    assert json_lines(soc("campaigns", "list", "--json")) == [campaign]
    shutil.rmtree(home)
