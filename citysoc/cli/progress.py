"""Ingest with a progress bar on the console: `soc ingest` and `soc demo` share it. Detection's flows, which
import the correlator and Spark, are in `citysoc.cli.flows`, so ingesting imports neither."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citysoc.settings import Settings
from citysoc.wiring import ingest

if TYPE_CHECKING:
    from collectors.ingest import IngestReport


def ingest_with_progress(settings: Settings, *, tenant: str, source: str, paths: Sequence[Path], year: int | None,
                         console: Console) -> IngestReport:
    """Parse, normalise and store files for one tenant, with a progress bar on a terminal."""
    with Progress(TextColumn("[bold]ingest[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"{tenant} · {source}", total=None)
        return ingest(settings, tenant=tenant, source=source, paths=paths, year=year,
                      on_progress=lambda n: progress.update(task, completed=n))
