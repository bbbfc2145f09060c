"""Rich rendering and progress around the wiring, used by the CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citysoc.detection_service import DetectionRun, DetectionService
from citysoc.schedule import Window, format_duration
from citysoc.settings import Settings
from citysoc.wiring import compile_rules, detection_service, ingest, rule_folders, spark_session
from collectors.ingest import IngestReport
from correlator.model import CompiledRuleSet

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def ingest_paths(settings: Settings, *, tenant: str, source: str, paths: Sequence[Path], year: int | None,
                 console: Console | None = None) -> IngestReport:
    """Parse, normalise and store files for one tenant, showing progress on the console."""
    with Progress(TextColumn("[bold]ingest[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=console is None or not console.is_terminal) as progress:
        task = progress.add_task(f"{tenant} · {source}", total=None)
        return ingest(settings, tenant=tenant, source=source, paths=paths, year=year,
                      on_progress=lambda n: progress.update(task, completed=n))


def _start_detection(settings: Settings, *, extra_rules: Sequence[Path], own_rules: bool,
                     console: Console) -> DetectionService:
    """The detection service over the compiled rules (the project's and `extra_rules`), reported."""
    folders = rule_folders(extra_rules, own_rules=own_rules)
    with console.status("starting Spark and compiling rules"):
        spark = spark_session(settings)
        rules = compile_rules(spark, folders)
    print_rule_report(console, rules)
    return detection_service(settings, spark, rules, reporter=ConsoleDetectionReporter(console))


def detection_summary(run: DetectionRun) -> str:
    result, answer = run.result, run.delivered
    return (f"detection: {sum(result.events.values())} events scanned, {len(result.alerts)} alerts matched, "
            f"{len(result.new_alerts)} new; case API: {answer['created']} alerts added to "
            f"{len(answer['cases'])} case(s), {answer['duplicates']} already known")


class ConsoleDetectionReporter:
    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, description: str) -> AbstractContextManager[object]:
        return self.console.status(description)

    def finished(self, run: DetectionRun, *, attempt: int, window: Window) -> None:
        self.console.print(f"run {attempt} {window}: {detection_summary(run)}")

    def failed(self, error: Exception, *, attempt: int, window: Window) -> None:
        self.console.print(f"run {attempt} {window}: failed ({type(error).__name__}: {error}); its window is covered "
                           "again by the next run")


def run_detect(settings: Settings, *, extra_rules: Sequence[Path], since: datetime | None, until: datetime | None,
               own_rules: bool = True, console: Console) -> DetectionRun:
    """Compile the rules, run them over the lake with Spark, store alerts and send them to the case API."""
    service = _start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    run = service.run_once(since, until)
    console.print(detection_summary(run))
    return run


def run_detect_every(settings: Settings, *, extra_rules: Sequence[Path], every: timedelta,
                     lookback: timedelta | None = None, since: datetime | None = None, runs: int = 0,
                     own_rules: bool = True, console: Console) -> list[DetectionRun]:
    service = _start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    if lookback is None:
        lookback = service.default_lookback()
    console.print(f"detecting every {format_duration(every)} (look-back {format_duration(lookback)}); "
                  "Ctrl-C or SIGTERM stops after the current run")
    return service.run(every=every, lookback=lookback, since=since, runs=runs)


def print_rule_report(console: Console, rules: CompiledRuleSet) -> None:
    """Compiled rules per dataset, and every rule that could not be compiled with its reason."""
    per_dataset = Counter(dataset for rule in rules.rules for dataset in rule.datasets)
    console.print(
        f"rules: {len(rules.rules)} compiled ("
        + ", ".join(f"{dataset}: {count}" for dataset, count in sorted(per_dataset.items()))
        + f"), {len(rules.unsupported)} not runnable"
    )
    if not rules.unsupported:
        return
    not_collected = Counter(r.reason for r in rules.unsupported if r.reason.startswith("log source"))
    for reason, count in sorted(not_collected.items()):
        console.print(f"  {count:4d} × {reason}")
    table = Table("rule", "file", "why it cannot run", title="Rules that cannot run", title_justify="left")
    for rule in rules.unsupported:
        if not rule.reason.startswith("log source"):
            table.add_row(f"{rule.title} ({rule.id})", str(rule.path), rule.reason)
    if table.row_count:
        console.print(table)


def render_case_queue(console: Console, cases: Sequence[dict[str, Any]], *, title: str = "Case queue") -> None:
    table = Table("case", "tenant", "severity", "status", "alerts", "last seen", "title", title=title,
                  title_justify="left")
    for case in cases:
        severity = case["severity"]
        table.add_row(str(case["id"]), case["tenant_id"], f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]",
                      case["status"], str(case["alert_count"]), str(case["last_seen"])[:16].replace("T", " "),
                      case["title"])
    if not cases:
        table.add_row("-", "-", "-", "-", "0", "-", "no open cases")
    console.print(table)
