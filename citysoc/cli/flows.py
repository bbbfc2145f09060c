"""Work several commands run with progress on the console: ingest with a progress bar, detection
started with a spinner and its rule report. `soc ingest`, `soc detect` and `soc demo` share these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citysoc.settings import Settings
from citysoc.wiring import compile_rules, detection_service, ingest, rule_folders, spark_session

if TYPE_CHECKING:  # detection's modules (the correlator, Spark) are imported when detection starts, not by ingest
    from citysoc.detection_service import DetectionRun, DetectionService
    from collectors.ingest import IngestReport


def ingest_with_progress(settings: Settings, *, tenant: str, source: str, paths: Sequence[Path], year: int | None,
                         console: Console) -> IngestReport:
    """Parse, normalise and store files for one tenant, with a progress bar on a terminal."""
    with Progress(TextColumn("[bold]ingest[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"{tenant} · {source}", total=None)
        return ingest(settings, tenant=tenant, source=source, paths=paths, year=year,
                      on_progress=lambda n: progress.update(task, completed=n))


def start_detection(settings: Settings, *, extra_rules: Sequence[Path], own_rules: bool,
                    console: Console) -> DetectionService:
    """Spark and the compiled rules (the project's unless `own_rules` is off, and `extra_rules`) in a
    detection service that reports on `console`; prints which rules run and which cannot."""
    from citysoc.cli.render import ConsoleDetectionReporter, print_rule_report

    folders = rule_folders(extra_rules, own_rules=own_rules)
    with console.status("starting Spark and compiling rules"):
        spark = spark_session(settings)
        rules = compile_rules(spark, folders)
    print_rule_report(console, rules)
    return detection_service(settings, spark, rules, reporter=ConsoleDetectionReporter(console))


def detect_once(settings: Settings, *, extra_rules: Sequence[Path], since: datetime | None, until: datetime | None,
                own_rules: bool, console: Console) -> DetectionRun:
    """One detection pass over [since, until), its alerts stored and sent to the case API, summarised."""
    from citysoc.cli.render import detection_summary

    service = start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    run = service.run_once(since, until)
    console.print(detection_summary(run))
    return run
