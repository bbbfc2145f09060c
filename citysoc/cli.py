"""`soc`: the one entry point for everything a CitySOC user runs.

The CLI is the composition root: it builds settings, the event store, the Spark session and the
case-API client, and hands them to the components. Components never import each other.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from citysoc.errors import CitySocError
from citysoc.logging import configure_logging
from citysoc.rules_cli import rules_app
from citysoc.settings import Settings
from citysoc.sources_cli import sources_app

app = typer.Typer(help="CitySOC: log correlation for a city-wide, multi-tenant SOC.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
tenants_app = typer.Typer(help="Member organisations (tenants).", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised by detection.", no_args_is_help=True)
cases_app = typer.Typer(help="The case queue.", no_args_is_help=True)
deadletter_app = typer.Typer(help="Records the collectors could not parse.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(alerts_app, name="alerts")
app.add_typer(cases_app, name="cases")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(rules_app, name="rules")
app.add_typer(sources_app, name="sources")

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]


def _settings() -> Settings:
    settings = Settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return settings


def _print_json_lines(items: list[dict[str, Any]]) -> None:
    for item in items:
        sys.stdout.write(orjson.dumps(item).decode() + "\n")


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time, e.g. 2024-07-31 or 2024-07-31T13:00:00Z") \
            from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Tenants -----------------------------------------------------------------------------------------

@tenants_app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="Slug, e.g. northgate-hospital.")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
) -> None:
    """Register a member organisation."""
    from citysoc.tenancy import validate_tenant_id
    from citysoc.wiring import case_client

    settings = _settings()
    validate_tenant_id(tenant_id)
    with case_client(settings, role="admin") as client:
        tenant = client.add_tenant(tenant_id, name or tenant_id)
    console.print(f"tenant [bold]{tenant['id']}[/bold] added")


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List member organisations."""
    from citysoc.wiring import case_client

    with case_client(_settings(), role="admin") as client:
        tenants = client.list_tenants()
    if as_json:
        _print_json_lines(tenants)
        return
    table = Table("id", "name", "created")
    for tenant in tenants:
        table.add_row(tenant["id"], tenant["name"], str(tenant.get("created_at", "")))
    console.print(table)


# Ingest ------------------------------------------------------------------------------------------

@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the logs belong to.")],
    source: Annotated[str, typer.Option("--source", "-s", help="Source kind: aws.cloudtrail or syslog.")],
    year: Annotated[int | None, typer.Option(help="Year for syslog lines that carry none.")] = None,
) -> None:
    """Parse log files, normalise them to ECS and store them; bad records go to the dead-letter store."""
    from citysoc.runtime import ingest_paths

    settings = _settings()
    report = ingest_paths(settings, tenant=tenant, source=source, paths=paths, year=year, console=err_console)
    console.print(report.summary())


# Detection ---------------------------------------------------------------------------------------

def _parse_duration(value: str | None, option: str) -> timedelta | None:
    from citysoc.schedule import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@app.command()
def detect(
    rules: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Extra Sigma rule folders.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this time (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Only events before this time (ISO-8601).")] = None,
    own_rules: Annotated[bool, typer.Option(help="Include the project's detection_rules/.")] = True,
    every: Annotated[str | None, typer.Option(
        help="Keep running: detect every DURATION (30s, 5m, 1h) over the events since the previous run, "
             "with Spark and the compiled rules kept warm. Ctrl-C or SIGTERM stops it.")] = None,
    lookback: Annotated[str | None, typer.Option(
        help="With --every: each run re-reads this much before the previous run's end, for late events and "
             "correlation windows across runs (default: the longest correlation timespan, at least 5m).")] = None,
    runs: Annotated[int, typer.Option(help="With --every: stop after this many runs (0: until stopped).",
                                      min=0)] = 0,
) -> None:
    """Run Sigma detection and correlation rules over the event store, then send alerts to the case API."""
    from citysoc.runtime import run_detect, run_detect_every

    interval = _parse_duration(every, "--every")
    look_back = _parse_duration(lookback, "--lookback")
    if interval is None and (look_back is not None or runs):
        raise typer.BadParameter("--lookback and --runs only apply with --every", param_hint="--every")
    if interval is not None and until is not None:
        raise typer.BadParameter("--every runs up to the present: it takes --since, not --until",
                                 param_hint="--until")
    settings = _settings()
    if interval is None:
        run_detect(settings, extra_rules=rules or [], since=_parse_time(since), until=_parse_time(until),
                   own_rules=own_rules, console=console)
        return
    try:
        run_detect_every(settings, extra_rules=rules or [], every=interval, lookback=look_back,
                         since=_parse_time(since), runs=runs, own_rules=own_rules, console=console)
    except KeyboardInterrupt:
        console.print("stopped")


# Alerts and cases --------------------------------------------------------------------------------

@alerts_app.command("list")
def alerts_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
                limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 1000) -> None:
    """List stored alerts."""
    from correlator.engine.alerts import read_alerts

    settings = _settings()
    alerts = read_alerts(settings.alerts_dir, tenant=tenant)
    alerts.sort(key=lambda alert: (alert["@timestamp"], alert["id"]), reverse=True)
    alerts = alerts[:limit]
    if as_json:
        _print_json_lines(alerts)
        return
    table = Table("time", "tenant", "level", "rule", "events", "id")
    for alert in alerts:
        table.add_row(alert["@timestamp"], alert["organization"]["id"], alert["rule"]["level"],
                      alert["rule"]["title"], str(len(alert["event"]["ids"])), alert["id"][:12])
    console.print(table)
    console.print(f"{len(alerts)} alert(s)")


@cases_app.command("list")
def cases_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
               status: Annotated[str | None, typer.Option(help="Only cases with this status.")] = None) -> None:
    """The case queue (highest severity first)."""
    from citysoc.wiring import case_client

    with case_client(_settings(), role="soc_analyst") as client:
        cases = client.list_cases(tenant=tenant, status=status)
    if as_json:
        _print_json_lines(cases)
        return
    from citysoc.runtime import render_case_queue

    render_case_queue(console, cases)


# Dead letters ------------------------------------------------------------------------------------

@deadletter_app.command("list")
def deadletter_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
                    limit: Annotated[int, typer.Option(help="At most this many.")] = 100) -> None:
    """Show unparsable records with the reason they were refused."""
    from citysoc.deadletter import DeadLetterStore

    letters = list(DeadLetterStore(_settings().deadletter_dir).list(tenant=tenant, limit=limit))
    if as_json:
        _print_json_lines(letters)
        return
    table = Table("tenant", "source", "origin", "reason", "raw")
    for letter in letters:
        table.add_row(letter["tenant"], letter["source"], letter["origin"], letter["reason"], letter["raw"][:60])
    console.print(table)


# API and demo ------------------------------------------------------------------------------------

@app.command()
def api(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000) -> None:
    """Serve the case API (OpenAPI docs at /api/v1/docs)."""
    import uvicorn

    from citysoc.wiring import embedded_case_app

    settings = _settings()
    application, _keys = embedded_case_app(settings)
    err_console.print(f"case API on http://{host}:{port}/api/v1/docs  (API keys: {settings.secrets_file})")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
def demo(
    corpora: Annotated[Path | None, typer.Option(help="Shared corpora folder to replay (auto-detected).")] = None,
    use_corpora: Annotated[bool, typer.Option("--corpora/--no-corpora", help="Replay ../shared/corpora if present.")]
    = True,
) -> None:
    """From an empty $SOC_HOME: tenants, a city scenario (plus real samples), detection, the case queue."""
    from citysoc.demo import run_demo

    run_demo(_settings(), corpora=corpora, use_corpora=use_corpora, console=console)


def main() -> None:
    try:
        app()
    except CitySocError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
