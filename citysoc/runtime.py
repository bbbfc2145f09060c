"""Wiring used by the CLI: builds stores, the Spark session and the case-API client from settings.

This is the composition root (with `citysoc.cli`): the only place that imports several components.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citysoc.caseclient import CaseClient
from citysoc.deadletter import DeadLetterStore
from citysoc.errors import ConfigurationError, UnknownTenantError
from citysoc.settings import Settings
from citysoc.store import ParquetEventStore

if TYPE_CHECKING:
    from fastapi import FastAPI

    from collectors.ingest import IngestReport
    from correlator.job import DetectionResult

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


def run_detect(settings: Settings, *, extra_rules: Sequence[Path], since: datetime | None, until: datetime | None,
               own_rules: bool = True, console: Console) -> DetectionResult:
    """Compile the rules, run them over the lake with Spark, store alerts and send them to the case API."""
    from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
    from correlator.job import run_detection
    from correlator.spark import build_session

    rule_dirs = ([DEFAULT_RULES_DIR] if own_rules else []) + [Path(path) for path in extra_rules]
    for directory in rule_dirs:
        if not directory.exists():
            raise ConfigurationError(f"rule folder {directory} does not exist")
    with console.status("starting Spark and compiling rules"):
        spark = build_session(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions,
                              driver_memory=settings.spark_driver_memory)
        rules = RuleCompiler(spark=spark).compile(rule_dirs)
    print_rule_report(console, rules)
    with console.status("running detection"):
        result = run_detection(spark, events_dir=settings.events_dir, alerts_dir=settings.alerts_dir, rules=rules,
                               since=since, until=until)
    with console.status("sending alerts to the case API"), case_client(settings, role="service") as client:
        # All alerts of the run, not only new ones: the API is idempotent by id, and this heals a
        # previous run whose alerts were stored but not delivered.
        answer: dict[str, Any] = client.post_alerts(result.alerts)
    console.print(
        f"detection: {sum(result.events.values())} events scanned, {len(result.alerts)} alerts matched, "
        f"{len(result.new_alerts)} new; case API: {answer['created']} alerts added to "
        f"{len(answer['cases'])} case(s), {answer['duplicates']} already known"
    )
    return result


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
