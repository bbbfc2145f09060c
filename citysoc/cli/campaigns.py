"""`soc campaigns list`: city-wide campaigns from the case API."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, console, load_settings, print_json_lines
from citysoc.cli.render import print_campaigns
from citysoc.wiring import case_client

app = typer.Typer(help="City-wide campaigns: one indicator seen at several member organisations.",
                  no_args_is_help=True)


@app.command("list")
def campaigns_list(as_json: JsonOpt = False,
                   limit: Annotated[int, typer.Option(help="At most this many, most recently active first.")] = 500,
                   ) -> None:
    """Campaigns with their indicator, member organisations and case ids (a member's key: its own part)."""
    with case_client(load_settings(), role="soc_analyst") as client:
        campaigns = client.list_campaigns(limit=limit)
    if as_json:
        print_json_lines(campaigns)
        return
    print_campaigns(console, campaigns)
