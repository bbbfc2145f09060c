"""What every `soc` command module shares: settings, consoles, common options, JSON lines, time parsing."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from citysoc.caseclient import CaseClientError
from citysoc.logging import configure_logging
from citysoc.schedule import parse_duration
from citysoc.settings import Settings

console = Console()
err_console = Console(stderr=True)  # progress and errors: stdout stays what a pipe expects
# Names, kinds and datasets are not numbers or paths to colour.
plain_console = Console(highlight=False)
# Rule tooling: a finding stays on one line with its file:line intact, whatever the terminal width.
line_console = Console(highlight=False, soft_wrap=True)
line_err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]


def load_settings() -> Settings:
    """Settings from the environment, with logging configured from them (commands are entry points)."""
    settings = Settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return settings


def print_json_lines(items: Iterable[Mapping[str, Any]]) -> None:
    """`--json` output: one object per line on stdout; values JSON has no type for are written as text."""
    for item in items:
        sys.stdout.write(orjson.dumps(item, default=str).decode() + "\n")


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 option value as an aware datetime (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        message = f"{value!r} is not an ISO-8601 time, e.g. 2024-07-31 or 2024-07-31T13:00:00Z"
        raise typer.BadParameter(message) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_duration_option(value: str | None, option: str) -> timedelta | None:
    """A duration option value (30s, 5m, 1h, 1d); a bad one is a usage error naming `option`."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@contextmanager
def api_refusals() -> Iterator[None]:
    """A refusal of the case API (`CaseClientError`) becomes a one-line error on stderr and exit code 1."""
    try:
        yield
    except CaseClientError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
