"""`soc tenants add|list`: the member organisations (kept by the case API)."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, console, load_settings, print_json_lines
from citysoc.cli.render import print_tenants
from citysoc.tenancy import validate_tenant_id
from citysoc.wiring import case_client

app = typer.Typer(help="Member organisations (tenants).", no_args_is_help=True)


@app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="Slug, e.g. northgate-hospital.")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
) -> None:
    """Register a member organisation."""
    settings = load_settings()
    validate_tenant_id(tenant_id)
    with case_client(settings, role="admin") as client:
        tenant = client.add_tenant(tenant_id, name or tenant_id)
    console.print(f"tenant [bold]{tenant['id']}[/bold] added")


@app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List member organisations."""
    with case_client(load_settings(), role="admin") as client:
        tenants = client.list_tenants()
    if as_json:
        print_json_lines(tenants)
        return
    print_tenants(console, tenants)
