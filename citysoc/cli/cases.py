"""`soc cases list`: the case queue of the case API."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, TenantOpt, console, load_settings, print_json_lines
from citysoc.cli.render import print_case_queue
from citysoc.wiring import case_client

app = typer.Typer(help="The case queue.", no_args_is_help=True)


@app.command("list")
def cases_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
               status: Annotated[str | None, typer.Option(help="Only cases with this status.")] = None) -> None:
    """The case queue (highest severity first)."""
    with case_client(load_settings(), role="soc_analyst") as client:
        cases = client.list_cases(tenant=tenant, status=status)
    if as_json:
        print_json_lines(cases)
        return
    print_case_queue(console, cases)
