"""`soc rules check`: the own rule set is clean; broken rules are reported with file:line and exit 1."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from correlator.authoring.attack import ATTACK_DATA_FILE, AttackData
from correlator.compiler import DEFAULT_RULES_DIR
from tests.rules.conftest import run_soc, write_rule


def _findings(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_own_rule_set_checks_clean() -> None:
    result = run_soc("rules", "check")
    assert result.exit_code == 0, result.output
    assert "7 rule file(s) checked against ATT&CK v19" in result.output or "rule file(s) checked" in result.output
    assert "0 error(s)" in result.output


def test_json_output_is_one_object_per_line_with_a_summary() -> None:
    result = run_soc("rules", "check", "--json", str(DEFAULT_RULES_DIR))
    assert result.exit_code == 0, result.output
    lines = _findings(result.stdout)
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["errors"] == 0 and lines[-1]["attack_version"] == "19"


def test_broken_yaml_is_reported_with_file_and_line(rules_dir: Path) -> None:
    write_rule(rules_dir / "linux", "good")
    broken = rules_dir / "linux" / "broken.yml"
    broken.write_text("title: Broken\nid: 1\ndetection:\n  selection: [unclosed\n  condition: selection\n")
    result = run_soc("rules", "check", str(rules_dir))
    assert result.exit_code == 1, result.output
    assert f"{broken}:" in result.output and "[yaml]" in result.output


def test_a_yaml_error_names_its_line_and_column_and_the_problem(rules_dir: Path) -> None:
    path = write_rule(rules_dir / "linux", "misindented")
    lines = path.read_text().splitlines()
    at = lines.index("    condition: selection")
    lines[at] = "      condition: selection"  # two spaces too deep: a block mapping inside a block mapping
    path.write_text("\n".join(lines) + "\n")
    result = run_soc("rules", "check", "--json", str(rules_dir))
    assert result.exit_code == 1
    finding = next(f for f in _findings(result.stdout) if f.get("check") == "yaml")
    assert (finding["path"], finding["line"], finding["column"]) == (str(path), at + 1, 7), finding
    assert "expected <block end>" in finding["message"] and f"starts at line {at - 1}" in finding["message"]
    plain = run_soc("rules", "check", str(rules_dir))
    assert f"{path}:{at + 1}:7: error [yaml]" in plain.output


def test_an_unknown_log_source_is_an_error_and_an_uncollected_one_a_warning(rules_dir: Path) -> None:
    typo = write_rule(rules_dir / "linux", "sudo_typo", service="sudo")
    uncollected = write_rule(rules_dir / "windows", "windows_security", product="windows", service="security",
                             selection="EventID: 4625")
    result = run_soc("rules", "check", "--json", str(rules_dir))
    assert result.exit_code == 1
    findings = _findings(result.stdout)
    unknown = [f for f in findings if f.get("check") == "logsource"]
    assert len(unknown) == 1 and unknown[0]["path"] == str(typo) and unknown[0]["severity"] == "error"
    assert unknown[0]["line"] == 12 and "service: auth" in unknown[0]["message"]  # the known ones are listed
    windows = [f for f in findings if f.get("path") == str(uncollected) and f.get("check") == "compile"]
    assert [f["severity"] for f in windows] == ["warning"] and "not collected" in windows[0]["message"]
    invented = write_rule(rules_dir / "linx", "invented_product", product="linx", service="auth")
    again = _findings(run_soc("rules", "check", "--json", str(invented)).stdout)
    assert any(f.get("check") == "logsource" and "'linx' is not a Sigma product" in f["message"] for f in again)


def test_evidence_naming_a_field_outside_the_schema_is_an_error_at_its_line(rules_dir: Path) -> None:
    rule = write_rule(rules_dir / "linux", "typo_evidence", evidence=(
        "examples:\n"
        "  - description: fires\n"
        "    match: true\n"
        "    ecs: {system.auth.ssh.event: Failed, process.name: sshd}\n"
        "  - description: a typo in a field name\n"
        "    match: false\n"
        "    ecs: {system.auth.ssh.event: Accepted, user.nmae: alice}\n"))
    result = run_soc("rules", "check", str(rules_dir))
    assert result.exit_code == 1 and "Traceback" not in result.output
    evidence = rule.with_name("typo_evidence.evidence.yaml")
    line = next(line for line in result.output.splitlines() if "[evidence]" in line)
    assert line.startswith(f"{evidence}:5: error [evidence]") and "user.nmae" in line, result.output


def test_invalid_sigma_is_reported_with_the_rule_id(rules_dir: Path) -> None:
    rule_id = str(uuid.uuid4())
    path = write_rule(rules_dir / "linux", "nocondition", rule_id=rule_id)
    path.write_text(path.read_text().replace("    condition: selection\n", ""))
    result = run_soc("rules", "check", "--json", str(rules_dir))
    assert result.exit_code == 1
    errors = [f for f in _findings(result.stdout) if f.get("severity") == "error"]
    assert any(f["check"] == "sigma" and f["path"] == str(path) and f["line"] >= 1 for f in errors), errors


def test_unknown_attack_tag_names_the_tag_and_the_attack_version(rules_dir: Path) -> None:
    path = write_rule(rules_dir / "linux", "oldtag", tags=("attack.defense-evasion", "attack.t1562.008"))
    result = run_soc("rules", "check", str(rules_dir))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "[attack-tag]" in line]
    assert len(lines) == 2, result.output
    assert lines[1].startswith(f"{path}:9:") and "attack.t1562.008" in lines[1] and "ATT&CK v19" in lines[1]


def test_duplicate_id_across_paths_is_reported(tmp_path: Path) -> None:
    rule_id = str(uuid.uuid4())
    first = write_rule(tmp_path / "pack-a" / "linux", "one", rule_id=rule_id)
    second = write_rule(tmp_path / "pack-b" / "linux", "two", rule_id=rule_id)
    result = run_soc("rules", "check", str(tmp_path / "pack-a"), str(tmp_path / "pack-b"))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "[unique-id]" in line)
    assert line.startswith(f"{second}:2:") and f"{first}:2" in line and rule_id in line


def test_logsource_folder_mismatch_is_reported(rules_dir: Path) -> None:
    path = write_rule(rules_dir / "aws", "misplaced")  # product linux in aws/
    result = run_soc("rules", "check", str(rules_dir))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "[logsource-folder]" in line)
    assert line.startswith(f"{path}:11:") and "folder aws/" in line and "product is linux" in line


def test_unknown_field_is_reported_at_its_line(rules_dir: Path) -> None:
    path = write_rule(rules_dir / "linux", "badfield", selection="system.auth.ssh.evnt: Failed")
    result = run_soc("rules", "check", str(rules_dir))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "[field]" in line)
    assert line.startswith(f"{path}:15:") and "system.auth.ssh.evnt" in line


def test_a_cloudtrail_field_the_mapping_lacks_is_reported(rules_dir: Path) -> None:
    write_rule(rules_dir / "aws", "ctfield", product="aws", service="cloudtrail", selection="notAField: x")
    result = run_soc("rules", "check", "--json", str(rules_dir))
    assert any(f["check"] == "field" and "notAField" in f["message"] for f in _findings(result.stdout))


def test_attack_data_can_be_rebuilt_from_a_stix_bundle_and_used(rules_dir: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "enterprise-attack.json"
    bundle.write_text(json.dumps({"type": "bundle", "objects": [
        {"type": "x-mitre-collection", "x_mitre_version": "99.1"},
        {"type": "x-mitre-tactic", "name": "Credential Access", "x_mitre_shortname": "credential-access",
         "external_references": [{"source_name": "mitre-attack", "external_id": "TA0006"}]},
        {"type": "attack-pattern", "name": "Brute Force", "kill_chain_phases": [
            {"kill_chain_name": "mitre-attack", "phase_name": "credential-access"}],
         "external_references": [{"source_name": "mitre-attack", "external_id": "T1110"}]},
        {"type": "attack-pattern", "name": "Old", "revoked": True,
         "external_references": [{"source_name": "mitre-attack", "external_id": "T1000"}]},
    ]}))
    out = tmp_path / "attack.json"
    result = run_soc("rules", "attack-data", "--from", str(bundle), "--out", str(out))
    assert result.exit_code == 0, result.output
    data = AttackData.load(out)
    assert data.version == "99.1" and set(data.techniques) == {"T1110"}
    assert data.techniques["T1110"].tactics == ("credential-access",)
    write_rule(rules_dir / "linux", "ok")  # tags credential-access + t1110
    write_rule(rules_dir / "linux", "other", tags=("attack.credential-access", "attack.t1110.001"))
    result = run_soc("rules", "check", "--attack-data", str(out), str(rules_dir))
    assert result.exit_code == 1
    assert "attack.t1110.001 is not a tactic or technique of ATT&CK v99.1" in result.output


def test_shipped_attack_data_is_v19() -> None:
    data = AttackData.load(ATTACK_DATA_FILE)
    assert data.version == "19"
    assert {"T1685.002", "T1690", "T1110.001"} <= set(data.techniques)
    assert "T1562.008" not in data.techniques  # retired in v19
    assert {"stealth", "defense-impairment"} <= set(data.tactics)
    assert data.unknown_tags(["attack.g0016", "attack.s0002", "cve.2021-44228"]) == []


def test_pysigma_reads_attack_from_the_offline_file() -> None:
    from sigma.data import mitre_attack

    AttackData.load().install_for_pysigma()
    assert mitre_attack.mitre_attack_version == "19"
    assert mitre_attack.mitre_attack_techniques["T1685.002"] == "Disable or Modify Cloud Log"
