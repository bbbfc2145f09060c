"""`soc rules test` and `soc rules backtest` through Spark (one shared session)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from correlator.authoring.evidence import evidence_for_rule
from correlator.compiler import DEFAULT_RULES_DIR
from tests.rules.conftest import run_soc, write_rule

pytestmark = pytest.mark.slow

FAILED = "Dec 10 07:07:45 LabSZ sshd[24206]: Failed password for invalid user test9 from 52.80.34.196 port 36060 ssh2"
ACCEPTED = "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2"
EVIDENCE = f"""\
examples:
  - description: a failure fires
    match: true
    raw: "{FAILED}"
  - description: an accepted login fires too (wrong on purpose)
    match: true
    raw: "{ACCEPTED}"
  - description: ECS look-alike stays quiet
    match: false
    ecs: {{process.name: sshd, system.auth.ssh.event: Accepted}}
"""


def test_own_rule_set_passes_with_junit(spark: Any, soc_home: Path, tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "rules.xml"
    result = run_soc("rules", "test", "--junit", str(junit), "--require-evidence")
    assert result.exit_code == 0, result.output
    rules = [path for path in DEFAULT_RULES_DIR.rglob("*.yml") if evidence_for_rule(path)]
    assert f"{len(rules)} passed, 0 failed" in result.output  # every shipped rule has evidence
    cases = sum(len(evidence_for_rule(path) or []) for path in rules)
    root = ET.parse(junit).getroot()
    testcases = root.findall(".//testcase")
    assert root.get("tests") == str(cases) == str(len(testcases)) and root.get("failures") == "0"
    assert all(case.get("file", "").endswith(".evidence.yaml") and int(case.get("line", "0")) > 0 for case in testcases)
    assert any("real OpenSSH line" in (case.get("name") or "") for case in testcases)  # raw examples ran


def test_failing_example_points_at_its_evidence_line(spark: Any, soc_home: Path, rules_dir: Path,
                                                      tmp_path: Path) -> None:
    rule = write_rule(rules_dir / "linux", "failing", evidence=EVIDENCE)
    write_rule(rules_dir / "linux", "untested")
    junit = tmp_path / "rules.xml"
    result = run_soc("rules", "test", "--junit", str(junit), str(rules_dir))
    assert result.exit_code == 1, result.output
    evidence = rule.with_name("failing.evidence.yaml")
    assert f"{evidence}:5: 'an accepted login fires too (wrong on purpose)': expected match, did not match" \
        in result.output
    assert "1 failed, 1 without evidence" in result.output
    root = ET.parse(junit).getroot()
    failures = root.findall(".//testcase/failure")
    assert root.get("tests") == "4" and root.get("failures") == "1" and len(failures) == 1
    assert f"{evidence}:5" in (failures[0].get("message") or "")
    assert len(root.findall(".//testcase/skipped")) == 1  # the rule without evidence
    # a rule without evidence fails only when evidence is required
    required = run_soc("rules", "test", "--require-evidence", str(rules_dir / "linux" / "untested.yml"))
    assert required.exit_code == 1


def test_backtest_counts_alerts_on_given_files_and_enforces_expectations(spark: Any, soc_home: Path,
                                                                         tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    lines = [FAILED.replace("07:07:45", f"07:0{7 + i // 60}:{i % 60:02d}") for i in range(12)] + [ACCEPTED]
    log.write_text("\n".join(lines) + "\n")
    base = ("rules", "backtest", "--events", str(log), "--source", "syslog", "--year", "2026")
    result = run_soc(*base, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["rule_id"]: row for row in map(json.loads, result.stdout.splitlines()) if "rule_id" in row}
    brute = "db1db3c8-e14b-43ae-a194-b0f5242600c5"
    assert rows[brute]["alerts"] == 1 and rows[brute]["tenants"] == ["backtest"]
    # a correlation's one alert stands on the 12 failed logins inside its window: counted apart from the alerts
    assert (rows[brute]["kind"], rows[brute]["events_behind_alerts"], rows[brute]["matched_events"]) == \
        ("correlation", 12, 12)
    assert rows["67e8ef0a-be01-4c25-9357-738a507ad525"]["matched_events"] == 12  # base rule: matches, no alerts
    assert rows["67e8ef0a-be01-4c25-9357-738a507ad525"]["alerts"] == 0
    noisy = run_soc(*base, "--expect", f"{brute}:exactly=0")
    assert noisy.exit_code == 1
    assert f"{brute}: expected exactly 0 alert(s) (--expect), got 1" in noisy.output
    assert run_soc(*base, "--expect", "*:at_most=1").exit_code == 0
    assert run_soc(*base, "--expect", "nonsense").exit_code == 2


def test_backtest_reads_expectations_from_evidence_and_the_stored_lake(spark: Any, soc_home: Path,
                                                                      rules_dir: Path, tmp_path: Path) -> None:
    write_rule(rules_dir / "linux", "quiet", evidence=EVIDENCE + "backtest: {at_most: 2}\n")
    log = tmp_path / "auth.log"
    log.write_text("\n".join([FAILED] * 3) + "\n")
    assert run_soc("tenants", "add", "council").exit_code == 0
    assert run_soc("ingest", "--tenant", "council", "--source", "syslog", "--year", "2026", str(log)).exit_code == 0
    result = run_soc("rules", "backtest", "--rules", str(rules_dir), "--tenant", "council")
    assert result.exit_code == 1, result.output
    assert "expected at most 2 alert(s)" in result.output and "got 3" in result.output
    assert run_soc("rules", "backtest", "--rules", str(rules_dir), "--tenant", "nobody").exit_code == 0
