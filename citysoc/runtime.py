"""Wiring used by the CLI: builds stores, the Spark session and the case-API client from settings.

This is the composition root (with `citysoc.cli`): the only place that imports several components.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citysoc.caseclient import CaseClient
from citysoc.deadletter import DeadLetterStore
from citysoc.errors import ConfigurationError, DetectionServiceError, UnknownTenantError
from citysoc.settings import Settings
from citysoc.store import ParquetEventStore

if TYPE_CHECKING:
    from fastapi import FastAPI

    from collectors.ingest import IngestReport
    from correlator.engine.detection import DetectionResult

log = structlog.get_logger(__name__)

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def embedded_case_app(settings: Settings) -> tuple[FastAPI, dict[str, str]]:
    """The case API application on the embedded database, and its bootstrap API keys by role."""
    from case_api.app import create_app
    from case_api.bootstrap import ensure_bootstrap_keys
    from case_api.settings import Settings as CaseSettings

    settings.ensure_home()
    case_settings = CaseSettings(home=settings.home, database_url=settings.database_url)
    application = create_app(case_settings)
    return application, ensure_bootstrap_keys(case_settings)


@contextmanager
def case_client(settings: Settings, *, role: str) -> Iterator[CaseClient]:
    """A client of the case API: the remote one at SOC_API_URL, else the embedded one in-process.

    `role` picks which bootstrap key the embedded default uses; against a remote API the key in
    SOC_API_KEY decides what is allowed.
    """
    if settings.api_url:
        if not settings.api_key:
            raise ConfigurationError("SOC_API_URL is set but SOC_API_KEY is not: give the API key to use")
        with CaseClient.remote(settings.api_url, settings.api_key) as client:
            yield client
        return
    application, keys = embedded_case_app(settings)
    try:
        with CaseClient.in_process(application, keys[role]) as client:
            yield client
    finally:
        application.state.engine.dispose()


def require_tenant(settings: Settings, tenant: str) -> None:
    with case_client(settings, role="admin") as client:
        if tenant not in {known["id"] for known in client.list_tenants()}:
            raise UnknownTenantError(tenant)


def ingest_paths(settings: Settings, *, tenant: str, source: str, paths: Sequence[Path], year: int | None,
                 console: Console | None = None) -> IngestReport:
    """Parse, normalise and store files for one tenant, showing progress on the console."""
    from collectors.ingest import ingest_files

    require_tenant(settings, tenant)
    store = ParquetEventStore(settings.events_dir)
    dead_letters = DeadLetterStore(settings.deadletter_dir)
    with Progress(TextColumn("[bold]ingest[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=console is None or not console.is_terminal) as progress:
        task = progress.add_task(f"{tenant} · {source}", total=None)
        return ingest_files(tenant=tenant, source=source, paths=list(paths), store=store, dead_letters=dead_letters,
                            year=year, on_progress=lambda n: progress.update(task, completed=n))


def _start_detection(settings: Settings, *, extra_rules: Sequence[Path], own_rules: bool,
                     console: Console) -> tuple[Any, Any]:
    """The Spark session and the compiled rules (the project's and `extra_rules`), reported."""
    from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
    from correlator.engine.session import build_session

    rule_dirs = ([DEFAULT_RULES_DIR] if own_rules else []) + [Path(path) for path in extra_rules]
    for directory in rule_dirs:
        if not directory.exists():
            raise ConfigurationError(f"rule folder {directory} does not exist")
    with console.status("starting Spark and compiling rules"):
        spark = build_session(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions,
                              driver_memory=settings.spark_driver_memory)
        rules = RuleCompiler(spark=spark).compile(rule_dirs)
    print_rule_report(console, rules)
    return spark, rules


def _detect_and_send(settings: Settings, spark: Any, rules: Any, *, since: datetime | None, until: datetime | None,
                     console: Console, prefix: str = "") -> DetectionResult:
    from correlator.engine.detection import run_detection

    with console.status("running detection"):
        result = run_detection(spark, store=ParquetEventStore(settings.events_dir), alerts_dir=settings.alerts_dir,
                               rules=rules,
                               since=since, until=until)
    with console.status("sending alerts to the case API"), case_client(settings, role="service") as client:
        # All alerts of the run, not only new ones: the API is idempotent by id, and this heals a
        # previous run whose alerts were stored but not delivered.
        answer: dict[str, Any] = client.post_alerts(result.alerts)
    console.print(
        f"{prefix}detection: {sum(result.events.values())} events scanned, {len(result.alerts)} alerts matched, "
        f"{len(result.new_alerts)} new; case API: {answer['created']} alerts added to "
        f"{len(answer['cases'])} case(s), {answer['duplicates']} already known"
    )
    return result


def run_detect(settings: Settings, *, extra_rules: Sequence[Path], since: datetime | None, until: datetime | None,
               own_rules: bool = True, console: Console) -> DetectionResult:
    """Compile the rules, run them over the lake with Spark, store alerts and send them to the case API."""
    spark, rules = _start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    return _detect_and_send(settings, spark, rules, since=since, until=until, console=console)


def detect_state_file(settings: Settings) -> Path:
    return settings.home / "detect-state.json"


def run_detect_every(settings: Settings, *, extra_rules: Sequence[Path], every: timedelta,
                     lookback: timedelta | None = None, since: datetime | None = None, runs: int = 0,
                     own_rules: bool = True, console: Console) -> list[DetectionResult]:
    """`soc detect --every`: one Spark session and rule set, a detection run every `every` (see
    `citysoc.schedule`) until SIGTERM or Ctrl-C, or after `runs` runs when not 0."""
    from citysoc.schedule import default_lookback, format_duration, load_state, next_window, save_state

    spark, rules = _start_detection(settings, extra_rules=extra_rules, own_rules=own_rules, console=console)
    if lookback is None:
        lookback = default_lookback([rule.correlation.timespan_seconds for rule in rules.correlations()
                                     if rule.correlation is not None])
    state_file = detect_state_file(settings)
    previous = None if since is not None else load_state(state_file)
    stop = threading.Event()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"detecting every {format_duration(every)} (look-back {format_duration(lookback)}); "
                  "Ctrl-C or SIGTERM stops after the current run")
    results: list[DetectionResult] = []
    attempts = failed = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            attempts += 1
            window = next_window(now=datetime.now(UTC).replace(microsecond=0), every=every, lookback=lookback,
                                 previous_until=previous, since=since if previous is None else None)
            prefix = f"run {attempts} {window}: "
            try:
                results.append(_detect_and_send(settings, spark, rules, since=window.since, until=window.until,
                                                console=console, prefix=prefix))
            except Exception as exc:  # a service outlives a failed run: the next one covers its window again
                failed += 1
                if previous is None:
                    since = window.since  # a first run that failed: the retry starts where it started
                log.error("detection run failed", window=str(window), error=str(exc), exc_info=True)
                console.print(f"{prefix}failed ({type(exc).__name__}: {exc}); its window is covered again "
                              "by the next run")
            else:
                failed = 0
                save_state(state_file, window.until)
                previous = window.until
            if runs and attempts >= runs:
                break
            late = time.monotonic() - started - every.total_seconds()
            if late > 0:
                log.warning("detection run took longer than --every", seconds_over=round(late, 1))
            stop.wait(max(0.0, -late))
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    if failed:
        raise DetectionServiceError(f"the last {failed} detection run(s) failed; see the messages above")
    return results


def print_rule_report(console: Console, rules: Any) -> None:
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
