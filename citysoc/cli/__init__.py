"""`soc`: the one entry point for everything a CitySOC user runs (`citysoc.cli:main`).

The CLI is the composition root: its command modules take settings and `citysoc.wiring` to build the
event store, the Spark session and the case-API client, and hand them to the components, which never
import each other.

- `entry`: `main`, which imports only the command it runs, and the table of every command;
  `app` here is the Typer application of all of them, built on first use;
- `common`: settings, consoles, shared options, the JSON-lines printer, time and duration options;
- `render`: Rich tables and summary lines; `progress`: ingest with a progress bar; `flows`: detection started
  with a spinner and its rule report;
- one module per command group: `tenants`, `users`, `keys`, `audit`, `sources`, `ingest`, `detect`, `alerts`, `cases`,
  `deadletter`, `rules`, `serve` (`soc api`), `demo`. They import `common`, `render`, `progress`, `flows` and
  `citysoc.wiring`, never each other.
"""

from typing import Any

from citysoc.cli.entry import build_app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    """`app`, every command in one Typer application (tests and `soc --help` use it), built once on first use."""
    if name == "app":
        app = globals()["app"] = build_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
