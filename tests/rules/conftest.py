"""Helpers for the rule-author tooling tests: write rules into tmp folders, run `soc` in-process."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from citysoc.cli import app
from citysoc.errors import CitySocError


@dataclass(frozen=True)
class SocRun:
    exit_code: int
    output: str  # stdout and stderr
    exception: BaseException | None
    stdout: str = ""


def run_soc(*args: str) -> SocRun:
    """`soc ARGS` in this process, with `citysoc.cli.main`'s handling: a CitySocError is exit 2 + advice."""
    result: Result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, CitySocError):
        return SocRun(2, f"{result.output}error: {result.exception}\n", result.exception, result.stdout)
    return SocRun(result.exit_code, result.output, result.exception, result.stdout)


def write_rule(folder: Path, name: str, *, product: str = "linux", service: str = "sshd",
               tags: tuple[str, ...] = ("attack.credential-access", "attack.t1110"),
               selection: str = "system.auth.ssh.event: Failed", rule_id: str | None = None,
               evidence: str | None = None) -> Path:
    """A small valid detection rule (and optionally its evidence sidecar); returns the rule path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    tag_lines = "\n".join(f"    - {tag}" for tag in tags)
    path.write_text(textwrap.dedent(f"""\
        title: Test Rule {name}
        id: {rule_id or uuid.uuid4()}
        status: experimental
        description: A rule written by a test.
        author: CitySOC
        date: 2026-11-21
        tags:
        {{tags}}
        logsource:
            product: {product}
            service: {service}
        detection:
            selection:
                {selection}
            condition: selection
        falsepositives:
            - Unknown
        level: medium
        """).replace("{tags}", tag_lines), encoding="utf-8")
    if evidence is not None:
        path.with_name(f"{name}.evidence.yaml").write_text(textwrap.dedent(evidence), encoding="utf-8")
    return path


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return tmp_path / "rules"
