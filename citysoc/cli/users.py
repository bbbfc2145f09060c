"""`soc users add|list|disable|enable`: the people and service accounts of the case API, with their roles."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, api_refusals, console, load_settings, print_json_lines
from citysoc.cli.render import print_users
from citysoc.wiring import case_client

app = typer.Typer(help="Users (people and service accounts) and their roles.", no_args_is_help=True)

ROLES = ("admin", "soc_lead", "soc_analyst", "tenant_responder", "tenant_viewer", "rule_author", "service")
UserArg = Annotated[str, typer.Argument(help="User id (login), e.g. ann.analyst.")]


@app.command("add")
def users_add(
    user_id: UserArg,
    role: Annotated[str, typer.Option("--role", "-r", help=f"One of {', '.join(ROLES)}.")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="The tenant of a tenant role.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name (defaults to the id).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user; then give them a key (`soc keys add --user ID`)."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        user = client.add_user(user_id, role=role, tenant_id=tenant, display_name=name)
    if as_json:
        print_json_lines([user])
        return
    console.print(f"user [bold]{user['id']}[/bold] added ({user['role']}"
                  + (f", {user['tenant_id']}" if user["tenant_id"] else "") + ")")


@app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Every user, with their role, tenant, state and the last use of any of their keys."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        users = client.list_users()
    if as_json:
        print_json_lines(users)
        return
    print_users(console, users)


@app.command("disable")
def users_disable(user_id: UserArg) -> None:
    """Refuse every key and token of a user from now on (the user and their audit trail stay)."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        client.update_user(user_id, disabled=True)
    console.print(f"user [bold]{user_id}[/bold] disabled")


@app.command("enable")
def users_enable(user_id: UserArg) -> None:
    """Accept a disabled user's keys again."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        client.update_user(user_id, disabled=False)
    console.print(f"user [bold]{user_id}[/bold] enabled")
