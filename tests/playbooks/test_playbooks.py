"""Our CACAO playbooks are valid against the official schemas, and their triggers name real rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from citysoc.playbooks import CacaoValidator, load_playbooks, playbooks_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator(corpora: Path) -> CacaoValidator:
    return CacaoValidator(corpora / "cacao" / "schemas")


def test_the_official_examples_are_valid(validator: CacaoValidator, corpora: Path) -> None:
    """Guards the validator itself: the OASIS TC's own examples must pass."""
    examples = sorted((corpora / "cacao" / "examples").glob("*.json"))
    assert examples
    for example in examples:
        assert validator.errors(yaml.safe_load(example.read_text())) == [], example.name


def test_our_playbooks_are_valid_cacao(validator: CacaoValidator) -> None:
    playbooks = list(load_playbooks())
    assert len(playbooks) >= 2
    for playbook in playbooks:
        assert validator.errors(playbook.document) == [], playbook.path.name


def test_an_invalid_playbook_is_reported_with_its_path(validator: CacaoValidator) -> None:
    document = copy.deepcopy(next(load_playbooks()).document)
    del document["created_by"]
    document["workflow_start"] = "not-an-identifier"
    errors = validator.errors(document)
    assert any("created_by" in error for error in errors), errors
    assert any(error.startswith("$.workflow_start") for error in errors), errors


def test_triggers_name_rules_that_exist() -> None:
    own_ids = {yaml.safe_load(path.read_text())["id"] for path in (REPO / "detection_rules").rglob("*.yml")}
    for playbook in load_playbooks():
        rule_ids, tags = playbook.triggers()
        assert rule_ids or tags, playbook.path.name
        assert rule_ids & own_ids, f"{playbook.path.name} names none of the project's rules"


def test_playbooks_for_a_brute_force_case() -> None:
    brute = next(p for p in load_playbooks() if p.path.name == "ssh-brute-force.json")
    rule_ids, _ = brute.triggers()
    chosen = playbooks_for(load_playbooks(), rule_ids=[next(iter(rule_ids))], tags=[])
    assert [p.path.name for p in chosen] == ["ssh-brute-force.json"]
    assert playbooks_for(load_playbooks(), rule_ids=["no-such-rule"], tags=["attack.t9999"]) == []
    assert [p.path.name for p in playbooks_for(load_playbooks(), rule_ids=[], tags=["attack.t1685.002"])] == [
        "cloud-logging-disabled.json"
    ]
