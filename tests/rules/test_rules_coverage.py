"""`soc sources add|list` and `soc rules coverage`: which rules can fire for each tenant."""

from __future__ import annotations

import json
from pathlib import Path

from collectors.base import get_parser
from correlator.compiler import DEFAULT_RULES_DIR
from tests.rules.conftest import run_soc


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_sources_add_and_list(soc_home: Path) -> None:
    assert run_soc("tenants", "add", "council").exit_code == 0
    added = run_soc("sources", "add", "--tenant", "council", "--kind", "cloudtrail", "org trail")
    assert added.exit_code == 0, added.output
    assert "aws.cloudtrail" in added.output  # the alias is stored under the collector's name
    assert run_soc("sources", "add", "--tenant", "council", "--kind", "syslog", "web-01").exit_code == 0
    listed = _lines(run_soc("sources", "list", "--json").stdout)
    assert [(s["name"], s["kind"], s["datasets"]) for s in listed] == [
        ("org trail", "aws.cloudtrail", ["aws.cloudtrail"]),
        ("web-01", "syslog", sorted(get_parser("syslog").datasets)),  # what the collector writes
    ]
    custom = run_soc("sources", "add", "--tenant", "council", "--kind", "netflow-x", "edge")
    assert custom.exit_code == 2 and "unknown source kind 'netflow-x'" in custom.output  # nothing could feed it
    unknown = run_soc("sources", "add", "--tenant", "nobody", "--kind", "syslog", "x")
    assert unknown.exit_code == 2 and "register it first" in unknown.output


def test_coverage_per_tenant_follows_onboarded_sources(soc_home: Path) -> None:
    for tenant in ("council", "school"):
        assert run_soc("tenants", "add", tenant).exit_code == 0
    assert run_soc("sources", "add", "--tenant", "council", "--kind", "syslog", "auth").exit_code == 0
    result = run_soc("rules", "coverage", "--json")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    summary = lines[0]
    assert summary["type"] == "summary" and summary["attack_version"] == "19"
    assert summary["rules"] == len(list(DEFAULT_RULES_DIR.rglob("*.yml")))
    techniques = {line["technique"]: line for line in lines if line["type"] == "technique"}
    assert techniques["T1685.002"]["name"] == "Disable or Modify Cloud Log"
    tenants = {line["tenant"]: line for line in lines if line["type"] == "tenant"}
    council = set(tenants["council"]["can_fire_titles"])
    assert "SSH Brute Force From One Source" in council and "AWS Console Login Without MFA" not in council
    assert "SSH Authentication Failure" not in council  # a base rule raises no alerts of its own
    assert tenants["school"]["can_fire"] == [] and tenants["school"]["datasets"] == []
    table = run_soc("rules", "coverage", "--tenant", "council")
    assert table.exit_code == 0 and "Per tenant" in table.output and "council" in table.output
