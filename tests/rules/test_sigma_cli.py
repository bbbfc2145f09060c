"""The official `sigma check` (sigma-cli) on CitySOC rules, offline: `soc rules sigma-cli` seeds pySigma's ATT&CK
cache and writes the validation config; sigma-cli itself then runs as a separate process with no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from correlator.compiler import DEFAULT_RULES_DIR
from tests.conftest import require
from tests.rules.conftest import write_rule

SIGMA = Path(sys.executable).with_name("sigma")


def _env(home: Path) -> dict[str, str]:
    # A HOME of its own: pySigma's caches live under ~/.cache, so nothing from an earlier download can help.
    return {**os.environ, "HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _setup(home: Path, *rules: Path) -> Path:
    config = home / "sigma-cli.yml"
    done = subprocess.run([sys.executable, "-m", "citysoc.cli", "rules", "sigma-cli", *map(str, rules),
                           "--config", str(config)], env=_env(home), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ATT&CK v19" in done.stdout and f"sigma check --fail-on-issues -c {config}" in done.stdout
    return config


def _sigma_check(home: Path, config: Path, *rules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SIGMA), "check", "--fail-on-issues", "-c", str(config), *map(str, rules)],
                          env=_env(home), capture_output=True, text=True, timeout=300)


@pytest.fixture
def sigma() -> Path:
    if not SIGMA.exists():
        require("sigma-cli", f"sigma-cli is not installed beside {sys.executable} (run make setup)")
    return SIGMA


def test_sigma_check_passes_on_the_projects_rules_offline(tmp_path: Path, sigma: Path) -> None:
    config = _setup(tmp_path, DEFAULT_RULES_DIR)
    written = yaml.safe_load(config.read_text())
    assert "-sigmahq_logsource_unknown" in written["validators"] and "-attacktag" not in written["validators"]
    done = _sigma_check(tmp_path, config, DEFAULT_RULES_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No validation issues found" in done.stdout and "Traceback" not in done.stderr


def test_sigma_check_still_judges_attack_tags_and_own_attributes_only_where_configured(tmp_path: Path,
                                                                                       sigma: Path) -> None:
    rules = tmp_path / "rules"
    write_rule(rules / "linux", "unknown_technique", tags=("attack.credential-access", "attack.t9999"))
    own = write_rule(rules / "linux", "own_attribute")
    own.write_text(own.read_text() + "citysoc:\n    group_by: [source.ip]\n")
    other = write_rule(rules / "linux", "foreign_attribute")
    other.write_text(other.read_text() + "vendor_key: 1\n")
    config = _setup(tmp_path, rules)
    done = _sigma_check(tmp_path, config, rules)
    assert done.returncode != 0
    issues = done.stdout
    assert "t9999" in issues  # ATT&CK validation ran, from the offline data
    assert "vendor_key" in issues and "citysoc" not in issues.replace("citysoc:", "")  # only ours is excused
