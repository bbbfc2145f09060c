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
from tests.collectors.samples import sysmon_line

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


NO_MFA_RULE = "2be62026-f416-4c70-9184-32f188f79ce5"
ATTACK_TOOL = "Pacu/1.6.0 (Python 3.12; +https://github.com/RhinoSecurityLabs/pacu)"
CONTRACTOR = "Contractor@City-IT.example"


def _console_logins(path: Path, *, member: int, start: datetime, user: str) -> Path:
    """CloudTrail as a member's trail delivers it: one console sign-in without MFA by an IAM user, from the
    member's own address but with the attacker's tool as user agent."""
    record = {
        "eventVersion": "1.09", "eventTime": f"{start:%Y-%m-%dT%H:%M:%SZ}", "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "eu-west-2", "sourceIPAddress": f"198.51.100.{10 + member}",
        "userAgent": ATTACK_TOOL, "eventID": f"6c3a1f0e-0000-4000-8000-00000000000{member}",
        "eventType": "AwsConsoleSignIn", "recipientAccountId": f"11112222333{member}",
        "userIdentity": {"type": "IAMUser", "principalId": f"AIDA00000000000000{member}",
                         "arn": f"arn:aws:iam::11112222333{member}:user/{user}",
                         "accountId": f"11112222333{member}", "userName": user},
        "additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/console/home"},
        "responseElements": {"ConsoleLogin": "Success"},
    }
    path.write_text(orjson.dumps({"Records": [record]}).decode())
    return path


def test_a_user_agent_and_a_user_principal_at_several_members_are_campaigns_of_their_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: object
) -> None:
    """Console sign-ins through the real pipeline (`soc ingest` of CloudTrail, `soc detect` with the project's
    rules): one attack tool's user agent at two members is below the user agent's three, at three it is a
    campaign; one IAM user principal (spelt differently) at two members is a campaign at once. Each member's
    address differs, so no address campaign forms."""
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    users = (CONTRACTOR, CONTRACTOR.lower(), "finance-admin")

    def ingest(number: int) -> None:
        member = MEMBERS[number]
        soc("tenants", "add", member, "--name", member.replace("-", " ").title())
        trail = _console_logins(tmp_path / f"{member}.json", member=number, user=users[number],
                                start=start + timedelta(minutes=20 * number))
        soc("ingest", "--tenant", member, "--source", "aws.cloudtrail", str(trail))

    ingest(0)
    ingest(1)
    soc("detect")
    alerts = json_lines(soc("alerts", "list", "--json"))
    assert sorted((a["organization"]["id"], a["entities"]["user_agent.original"]) for a in alerts
                  if a["rule"]["id"] == NO_MFA_RULE) == [(m, [ATTACK_TOOL]) for m in sorted(MEMBERS[:2])]
    cases = {case["tenant_id"]: case["id"] for case in json_lines(soc("cases", "list", "--json"))}
    [principal] = json_lines(soc("campaigns", "list", "--json"))
    assert principal["indicator"] == {"kind": "user_principal", "value": CONTRACTOR.lower()}
    assert principal["tenants"] == sorted(MEMBERS[:2])
    assert principal["case_ids"] == sorted(cases[m] for m in MEMBERS[:2])

    ingest(2)
    soc("detect")
    cases = {case["tenant_id"]: case["id"] for case in json_lines(soc("cases", "list", "--json"))}
    campaigns = {c["indicator"]["kind"]: c for c in json_lines(soc("campaigns", "list", "--json"))}
    assert sorted(campaigns) == ["user_agent", "user_principal"]
    agent = campaigns["user_agent"]
    assert agent["indicator"] == {"kind": "user_agent", "value": ATTACK_TOOL}
    assert agent["tenants"] == sorted(MEMBERS)
    assert agent["case_ids"] == sorted(cases.values())
    assert campaigns["user_principal"] == principal
    monkeypatch.setenv("COLUMNS", "300")  # the table on one line a campaign
    table = soc("campaigns", "list")
    assert f"user_agent={ATTACK_TOOL}" in table and f"user_principal={CONTRACTOR.lower()}" in table


IMPLANT_SHA256 = "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"
OWN_SYSMON_RULES = """
title: Implant Started From A Hidden Folder
id: 0d9c3f6a-6d0e-4c1e-9f2b-3a7e5c1d2b01
logsource: {product: linux, category: process_creation}
detection:
    selection: {Image|endswith: /.cache/.x/kworkerd}
    condition: selection
level: medium
---
title: Connection To The Implant's Update Domain
id: 0d9c3f6a-6d0e-4c1e-9f2b-3a7e5c1d2b02
logsource: {product: linux, category: network_connection}
detection:
    selection: {DestinationHostname|endswith: .evil-updates.example}
    condition: selection
level: medium
"""


def test_a_file_hash_and_a_domain_at_two_members_are_campaigns_of_their_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: object
) -> None:
    """Sysmon for Linux through syslog (`soc ingest`), two rules of the member's own (`soc detect --rules`): the
    implant's hash (Sysmon writes it upper-case) at two members is one campaign, its update domain (spelt
    differently) another; the private address both machines connect from is no campaign."""
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "implant.yml").write_text(OWN_SYSMON_RULES)
    domains = ("C2.Evil-Updates.example", "c2.evil-updates.EXAMPLE")
    for number, member in enumerate(MEMBERS[:2]):
        soc("tenants", "add", member, "--name", member.replace("-", " ").title())
        utc = f"2026-03-02 09:{10 * number:02d}:00.000"
        lines = [
            sysmon_line(1, {"Image": "/root/.cache/.x/kworkerd", "CommandLine": "kworkerd -d", "User": "root",
                            "Hashes": f"SHA256={IMPLANT_SHA256}"}, host=f"{member}-app", record=1, utc=utc),
            sysmon_line(3, {"Image": "/root/.cache/.x/kworkerd", "User": "www-data", "Protocol": "tcp",
                            "Initiated": "true", "SourceIp": "10.0.0.5", "SourcePort": "50000",
                            "DestinationIp": f"198.51.100.{20 + number}", "DestinationHostname": domains[number],
                            "DestinationPort": "443"}, host=f"{member}-app", record=2, utc=utc),
        ]
        log = tmp_path / f"{member}.log"
        log.write_text("\n".join(line.replace("Mar  1 12:00:00", f"Mar  2 09:{10 * number:02d}:00")
                                 for line in lines) + "\n")
        soc("ingest", "--tenant", member, "--source", "syslog", "--year", "2026", str(log))
    soc("detect", "--rules", str(rules))

    cases = json_lines(soc("cases", "list", "--json"))
    by_key = {(case["tenant_id"], case["group_key"]): case["id"] for case in cases}
    campaigns = {c["indicator"]["kind"]: c for c in json_lines(soc("campaigns", "list", "--json"))}
    assert sorted(campaigns) == ["domain", "hash"]
    assert campaigns["hash"]["indicator"] == {"kind": "hash", "value": IMPLANT_SHA256.lower()}
    assert campaigns["domain"]["indicator"] == {"kind": "domain", "value": "c2.evil-updates.example"}
    for kind, user in (("hash", "root"), ("domain", "www-data")):
        assert campaigns[kind]["tenants"] == sorted(MEMBERS[:2])
        assert campaigns[kind]["case_ids"] == sorted(by_key[(m, f"user.name={user}")] for m in MEMBERS[:2])
