"""`soc keys add|list|revoke`: API keys, each owned by a user and acting as them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from citysoc.cli.common import (
    JsonOpt,
    api_refusals,
    console,
    err_console,
    load_settings,
    parse_duration_option,
    parse_time,
    print_json_lines,
)
from citysoc.cli.render import print_keys
from citysoc.wiring import case_client

app = typer.Typer(help="API keys: each belongs to a user and acts as them.", no_args_is_help=True)


def expiry(value: str | None) -> datetime | None:
    """`--expires`: a duration from now (90d, 12h) or an ISO-8601 time."""
    if value is None:
        return None
    if value.strip() and value.strip()[-1] in "smhd" and value.strip()[:-1].isdigit():
        duration = parse_duration_option(value, "--expires")
        assert duration is not None
        return datetime.now(UTC) + duration
    return parse_time(value)


@app.command("add")
def keys_add(
    user: Annotated[str, typer.Option("--user", "-u", help="The user the key acts as (`soc users add`).")],
    name: Annotated[str | None, typer.Option("--name", help="Label, e.g. laptop (defaults to the user id).")] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", help="When it stops working: a duration from now (90d) or a time (2027-01-31).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a key for a user and print its secret, once."""
    expires_at = expiry(expires)
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        key = client.create_key(name=name or user, user_id=user,
                                expires_at=expires_at.isoformat() if expires_at else None)
    if as_json:
        print_json_lines([key])
        return
    err_console.print(f"key #{key['id']} for [bold]{key['user_id']}[/bold] ({key['role']})"
                      + (f", expires {key['expires_at']}" if key["expires_at"] else "")
                      + ". The secret is shown once; store it now:")
    typer.echo(key["secret"])


@app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Keys (never their secrets): owner, expiry, last use, revocation."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        keys = client.list_keys(user_id=user)
    if as_json:
        print_json_lines(keys)
        return
    print_keys(console, keys)


@app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="Key id (`soc keys list`).", min=1, max=2**31 - 1)]) -> None:
    """Refuse a key from now on."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        client.revoke_key(key_id)
    console.print(f"key #{key_id} revoked")
