"""`soc ingest`: log files of one tenant through the collectors into the event store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citysoc.cli.common import console, err_console, load_settings
from citysoc.cli.progress import ingest_with_progress
from collectors.allocator import use_system_allocator


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the logs belong to.")],
    source: Annotated[str, typer.Option("--source", "-s", help="Source kind: aws.cloudtrail or syslog.")],
    year: Annotated[int | None, typer.Option(help="Year for syslog lines that carry none.")] = None,
) -> None:
    """Parse log files, normalise them to ECS and store them; bad records go to the dead-letter store.

    Exits with 1 when every record of some file was dead-lettered (a file of another kind, usually)."""
    settings = load_settings()
    use_system_allocator()
    report = ingest_with_progress(settings, tenant=tenant, source=source, paths=paths, year=year,
                                  console=err_console)
    console.print(report.summary())
    if report.failed:
        raise typer.Exit(1)
