"""Whole-corpus checks of the project's own rules: metadata, compilation, and evidence through Spark."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from citysoc.wiring import raw_parser
from correlator.authoring.evidence import check_evidence, evidence_path, load_evidence
from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
from correlator.model import CompiledRuleSet

RULE_FILES = sorted(DEFAULT_RULES_DIR.rglob("*.yml"))
REQUIRED = ("title", "id", "status", "description", "author", "date", "tags", "level", "falsepositives")


def _doc(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_there_are_at_least_five_rules() -> None:
    assert len(RULE_FILES) >= 5


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_metadata(path: Path) -> None:
    doc = _doc(path)
    missing = [key for key in REQUIRED if not doc.get(key)]
    assert not missing, f"{path}: missing {missing}"
    assert uuid.UUID(doc["id"]).version == 4, f"{path}: id must be a uuid4"
    assert doc["author"] == "CitySOC"
    assert any(tag.startswith("attack.t") for tag in doc["tags"]), f"{path}: needs an ATT&CK technique tag"
    assert ("correlation" in doc) != ("detection" in doc and "logsource" in doc), path
    if "logsource" in doc:  # folder says the log source
        product = doc["logsource"]["product"]
        assert path.parent.name == product, path


def test_rule_ids_are_unique() -> None:
    ids = [_doc(path)["id"] for path in RULE_FILES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_has_positive_and_negative_evidence(path: Path) -> None:
    sidecar = evidence_path(path)
    assert sidecar.is_file(), f"{path}: evidence file {sidecar.name} is missing"
    cases = load_evidence(sidecar)
    assert any(case.expected > 0 for case in cases), f"{sidecar}: no case that fires"
    assert any(case.expected == 0 for case in cases), f"{sidecar}: no look-alike that must not fire"


RAW_EVIDENCE = ("cloudtrail_logging_disabled", "console_login_without_mfa", "sshd_failed_password",
                "sshd_root_login_accepted", "sshd_brute_force", "sshd_login_accepted", "sshd_brute_force_then_login",
                "iam_access_key_created", "cloudtrail_trail_stopped", "logging_disabled_after_new_access_key",
                "entra_signin_failed", "entra_admin_role_or_mfa_change", "okta_admin_or_mfa_change",
                "exchange_mailbox_forwarding", "gcp_service_account_key_created", "github_branch_protection_disabled",
                "identity_takeover_then_privilege_change", "cloud_credential_then_logging_disabled",
                "m365_audit_logging_disabled")


@pytest.mark.parametrize("name", RAW_EVIDENCE)
def test_rules_carry_raw_evidence(name: str) -> None:
    """Evidence as the collectors receive it (a real OpenSSH line, a real CloudTrail record)."""
    sidecar = next(evidence_path(path) for path in RULE_FILES if path.stem == name)
    assert any(event.raw is not None for case in load_evidence(sidecar) for event in case.events), sidecar


@pytest.fixture(scope="module")
def ruleset(spark: Any) -> CompiledRuleSet:
    return RuleCompiler(spark).compile([DEFAULT_RULES_DIR])


@pytest.mark.slow
def test_every_rule_compiles(ruleset: CompiledRuleSet) -> None:
    assert ruleset.unsupported == []
    assert ruleset.verified
    assert {Path(rule.path or "") for rule in ruleset.rules} == set(RULE_FILES)


@pytest.mark.slow
def test_evidence_passes_through_spark(spark: Any, ruleset: CompiledRuleSet, tmp_path: Path) -> None:
    cases = {rule.id: load_evidence(evidence_path(Path(rule.path or ""))) for rule in ruleset.rules}
    outcomes = check_evidence(spark, ruleset, cases, raw_parser=raw_parser(2026))
    assert len(outcomes) == sum(len(c) for c in cases.values())
    failures = [f"{o.rule_id}: {o.explain()}" for o in outcomes if not o.ok]
    assert not failures, "\n".join(failures)
    assert not [o for o in outcomes if o.skipped]
