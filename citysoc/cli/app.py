"""The `soc` Typer application: every command group in one tree, and `main`, the console entry point.

The CLI is the composition root: its command modules take settings and `citysoc.wiring` to build the
event store, the Spark session and the case-API client, and hand them to the components, which never
import each other.
"""

from __future__ import annotations

import typer

from citysoc.cli import (
    alerts,
    audit,
    campaigns,
    cases,
    deadletter,
    geoip,
    keys,
    notifications,
    rules,
    sources,
    tenants,
    users,
)
from citysoc.cli.collect import collect
from citysoc.cli.common import err_console
from citysoc.cli.demo import demo
from citysoc.cli.detect import detect
from citysoc.cli.ingest import ingest
from citysoc.cli.metrics import metrics
from citysoc.cli.pull import pull
from citysoc.cli.run import run
from citysoc.cli.serve import api
from citysoc.errors import CitySocError

app = typer.Typer(help="CitySOC: log correlation for a city-wide, multi-tenant SOC.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command()(ingest)
app.command()(collect)
app.command()(pull)
app.command()(detect)
app.command()(api)
app.command()(demo)
app.command()(run)
app.command()(metrics)
app.add_typer(tenants.app, name="tenants")
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(alerts.app, name="alerts")
app.add_typer(cases.app, name="cases")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(deadletter.app, name="deadletter")
app.add_typer(rules.app, name="rules")
app.add_typer(sources.app, name="sources")
app.add_typer(geoip.app, name="geoip")
app.add_typer(notifications.contacts_app, name="contacts")
app.add_typer(notifications.notifications_app, name="notifications")


def main() -> None:
    """`soc`: an error CitySOC raises on purpose is advice on stderr and exit code 2, not a traceback."""
    try:
        app()
    except CitySocError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise SystemExit(2) from None
