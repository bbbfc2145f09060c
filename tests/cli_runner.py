"""Running `soc` in the test process (Typer's CliRunner) against a SOC_HOME, and reading its JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from citysoc.cli import app


def run_soc(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`soc ARGS` with SOC_HOME=`home` (and `env`): exit code, stdout, stderr; an unexpected exception is raised."""
    result = CliRunner().invoke(app, list(args), env={"SOC_HOME": str(home), "COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects of `--json` output, one a line (blank lines skipped)."""
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]
