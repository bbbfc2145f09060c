"""Detection started with a spinner and its rule report on the console: `soc detect` and `soc demo` share these.
Ingesting with a progress bar is `citysoc.cli.progress` (it imports neither the correlator nor Spark)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console

from citysoc.cli.render import ConsoleDetectionReporter, detection_summary, print_rule_report
from citysoc.detection_service import DetectionRun, DetectionService
from citysoc.settings import Settings
from citysoc.wiring import compile_rules, detection_service, rule_folders, spark_session


def start_detection(settings: Settings, *, extra_rules: Sequence[Path], own_rules: bool,
                    console: Console) -> DetectionService:
    """Spark and the compiled rules (the project's unless `own_rules` is off, and `extra_rules`) in a
    detection service that reports on `console`; prints which rules run and which cannot."""
    folders = rule_folders(extra_rules, own_rules=own_rules)
    with console.status("starting Spark and compiling rules"):
        spark = spark_session(settings)
        rules = compile_rules(spark, folders)
    print_rule_report(console, rules)
    return detection_service(settings, spark, rules, reporter=ConsoleDetectionReporter(console))


def detect_once(settings: Settings, *, extra_rules: Sequence[Path], since: datetime | None, until: datetime | None,
                own_rules: bool, console: Console) -> DetectionRun:
    """One detection pass over [since, until), its alerts stored and sent to the case API, summarised."""
    service = start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    run = service.run_once(since, until)
    console.print(detection_summary(run))
    return run
