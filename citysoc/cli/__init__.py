"""`soc`: the one entry point for everything a CitySOC user runs (`citysoc.cli:main`).

- `app`: the Typer application assembling the command modules, and `main`;
- `common`: settings, consoles, shared options, the JSON-lines printer, time and duration options;
- `render`: Rich tables and summary lines; `flows`: work several commands show progress for;
- one module per command group: `tenants`, `users`, `keys`, `audit`, `sources`, `ingest`, `detect`, `alerts`, `cases`,
  `deadletter`, `rules`, `serve` (`soc api`), `demo`. They import `common`, `render`, `flows` and
  `citysoc.wiring`, never each other.
"""

from citysoc.cli.app import app, main

__all__ = ["app", "main"]
