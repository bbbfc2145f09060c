"""`main`, the `soc` console entry point: it imports only the command it runs.

Every command module pulls in what its command needs (the case API and FastAPI, Spark and the rule compiler,
the listeners); importing them all costs about three CPU seconds, as much as ingesting 100,000 syslog lines.
So `main` builds a Typer application holding just the command named on the command line, and the whole tree
(`citysoc.cli.app`) only for `soc`, `soc --help` or a name it does not know (Typer then says so).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from citysoc.cli.common import err_console
from citysoc.errors import CitySocError

HELP = "CitySOC: log correlation for a city-wide, multi-tenant SOC."
# name -> (module, attribute): a command function, or a Typer group of subcommands; in `soc --help` order
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("citysoc.cli.ingest", "ingest"),
    "collect": ("citysoc.cli.collect", "collect"),
    "pull": ("citysoc.cli.pull", "pull"),
    "detect": ("citysoc.cli.detect", "detect"),
    "api": ("citysoc.cli.serve", "api"),
    "demo": ("citysoc.cli.demo", "demo"),
    "run": ("citysoc.cli.run", "run"),
    "metrics": ("citysoc.cli.metrics", "metrics"),
}
GROUPS: dict[str, tuple[str, str]] = {
    "tenants": ("citysoc.cli.tenants", "app"),
    "users": ("citysoc.cli.users", "app"),
    "keys": ("citysoc.cli.keys", "app"),
    "audit": ("citysoc.cli.audit", "app"),
    "alerts": ("citysoc.cli.alerts", "app"),
    "cases": ("citysoc.cli.cases", "app"),
    "campaigns": ("citysoc.cli.campaigns", "app"),
    "deadletter": ("citysoc.cli.deadletter", "app"),
    "rules": ("citysoc.cli.rules", "app"),
    "sources": ("citysoc.cli.sources", "app"),
    "geoip": ("citysoc.cli.geoip", "app"),
    "contacts": ("citysoc.cli.notifications", "contacts_app"),
    "notifications": ("citysoc.cli.notifications", "notifications_app"),
}


def _attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def build_app(names: tuple[str, ...] | None = None) -> typer.Typer:
    """The `soc` application with the named commands and groups (all of them when None)."""
    app = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)
    for name, (module, attribute) in COMMANDS.items():
        if names is None or name in names:
            app.command(name=name)(_attribute(module, attribute))
    for name, (module, attribute) in GROUPS.items():
        if names is None or name in names:
            group = _attribute(module, attribute)
            assert isinstance(group, typer.Typer)
            app.add_typer(group, name=name)
    if names is not None:
        # one command stays a subcommand (`soc ingest ...`), as in the whole tree, rather than becoming the root
        app.callback()(lambda: None)
    return app


def main() -> None:
    """`soc`: an error CitySOC raises on purpose is advice on stderr and exit code 2, not a traceback."""
    named = sys.argv[1] if len(sys.argv) > 1 else None
    app = build_app((named,)) if named in COMMANDS or named in GROUPS else build_app()
    try:
        app()
    except CitySocError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise SystemExit(2) from None
