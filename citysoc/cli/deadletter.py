"""`soc deadletter list`: records the collectors refused, with the reason."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, TenantOpt, console, load_settings, print_json_lines
from citysoc.cli.render import print_dead_letters
from citysoc.wiring import dead_letter_store

app = typer.Typer(help="Records the collectors could not parse.", no_args_is_help=True)


@app.command("list")
def deadletter_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
                    limit: Annotated[int, typer.Option(help="At most this many.")] = 100) -> None:
    """Show unparsable records with the reason they were refused."""
    letters = list(dead_letter_store(load_settings()).list(tenant=tenant, limit=limit))
    if as_json:
        print_json_lines(letters)
        return
    print_dead_letters(console, letters)
