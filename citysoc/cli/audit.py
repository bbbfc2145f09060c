"""`soc audit list|verify`: the case API's hash-chained audit log of every change."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, TenantOpt, api_refusals, console, err_console, load_settings, print_json_lines
from citysoc.cli.render import print_audit
from citysoc.wiring import case_client

app = typer.Typer(help="The audit log: who changed what, hash-chained.", no_args_is_help=True)


@app.command("list")
def audit_list(
    tenant: TenantOpt = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only changes by this user id.")] = None,
    target_type: Annotated[str | None, typer.Option(
        "--type", help="Only changes to this kind of object: user, key, tenant, source, case.")] = None,
    target_id: Annotated[str | None, typer.Option("--id", help="Only changes to this object (with --type).")] = None,
    limit: Annotated[int, typer.Option(help="Newest entries shown.", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest changes first."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        entries = client.audit_entries(limit=limit, tenant=tenant, actor=actor, target_type=target_type,
                                       target_id=target_id)
    if as_json:
        print_json_lines(entries)
        return
    print_audit(console, entries)


@app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Walk the whole chain; exit 1 and name the first broken entry if an entry was changed or removed."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        result = client.verify_audit()
    if as_json:
        print_json_lines([result])
    elif result["ok"]:
        console.print(f"audit log intact: {result['entries']} entries, head {result['head_hash']}")
    else:
        where = f"entry id {result['broken_id']} (seq {result['broken_seq']})" if result["broken_id"] is not None \
            else f"seq {result['broken_seq']}"
        err_console.print(f"[red]audit log broken[/red] at {where}: {result['reason']}; "
                          f"{result['entries']} entries before it verify")
    if not result["ok"]:
        raise typer.Exit(1)
