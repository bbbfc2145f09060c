"""The shipped campaign rule on real detection: one attacker at three members is one campaign, not three
unrelated cases. Events go through `soc ingest`, the project's Sigma rules run in Spark (`soc detect`), the
alerts reach the case API, and `soc campaigns list --json` shows the campaign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from citysoc.cli import app

pytestmark = pytest.mark.slow

ATTACKER = "203.0.113.50"
MEMBERS = ("northgate-hospital", "riverside-school", "elm-street-gp")
BRUTE_FORCE_RULE = "db1db3c8-e14b-43ae-a194-b0f5242600c5"


def soc(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def json_lines(output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]


def _auth_log(path: Path, *, host: str, start: datetime, attacker: str, failures: int) -> Path:
    """sshd lines as the member's server writes them: `failures` wrong passwords, 20 s apart, and one
    unrelated staff login failure from the office network."""
    lines = [
        f"{(start + timedelta(seconds=20 * n)):%b %d %H:%M:%S} {host} sshd[{4100 + n}]: "
        f"Failed password for invalid user admin{n % 3} from {attacker} port {40000 + n} ssh2"
        for n in range(failures)
    ]
    lines.append(f"{(start + timedelta(hours=1)):%b %d %H:%M:%S} {host} sshd[5000]: "
                 "Failed password for alice from 10.1.2.3 port 50000 ssh2")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_attacker_at_three_members_is_one_campaign_linking_three_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: object
) -> None:
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for number, member in enumerate(MEMBERS):
        soc("tenants", "add", member, "--name", member.replace("-", " ").title())
        log = _auth_log(tmp_path / f"{member}.log", host=f"{member}-bastion",
                        start=start + timedelta(minutes=15 * number), attacker=ATTACKER, failures=12)
        soc("ingest", "--tenant", member, "--source", "syslog", "--year", "2026", str(log))
    soc("detect")

    cases = json_lines(soc("cases", "list", "--json"))
    attacked = {case["tenant_id"]: case["id"] for case in cases if ATTACKER in case["group_key"]}
    assert sorted(attacked) == sorted(MEMBERS)
    alerts = json_lines(soc("alerts", "list", "--json"))
    assert {a["rule"]["id"] for a in alerts if a["entities"].get("source.ip") == [ATTACKER]} == {BRUTE_FORCE_RULE}

    [campaign] = json_lines(soc("campaigns", "list", "--json"))
    assert campaign["indicator"] == {"kind": "ip", "value": ATTACKER}
    assert campaign["tenants"] == sorted(MEMBERS)
    assert campaign["case_ids"] == sorted(attacked.values())
    # The case's last activity is the burst's last failure, not the start of its window.
    last_failure = start + timedelta(minutes=30, seconds=20 * 11)
    gp_last = max(case["last_seen"] for case in cases if case["id"] == attacked["elm-street-gp"])
    assert datetime.fromisoformat(gp_last.replace("Z", "+00:00")) == last_failure
    assert "Campaigns" in soc("campaigns", "list")

    soc("detect")  # again: nothing new, the same one campaign
    assert json_lines(soc("campaigns", "list", "--json")) == [campaign]
