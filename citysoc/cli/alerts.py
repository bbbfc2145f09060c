"""`soc alerts list`: the alerts detection stored in the lake."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, TenantOpt, console, load_settings, print_json_lines
from citysoc.cli.render import print_alerts
from correlator.engine.alerts import read_alerts

app = typer.Typer(help="Alerts raised by detection.", no_args_is_help=True)


@app.command("list")
def alerts_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
                limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 1000) -> None:
    """List stored alerts."""
    settings = load_settings()
    alerts = read_alerts(settings.alerts_dir, tenant=tenant)
    alerts.sort(key=lambda alert: (alert["@timestamp"], alert["id"]), reverse=True)
    alerts = alerts[:limit]
    if as_json:
        print_json_lines(alerts)
        return
    print_alerts(console, alerts)
