"""`soc contacts add|list|remove` and `soc notifications list|send`: who hears of new high/critical cases and SLA
breaches, and what was delivered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from citysoc.caseclient import CaseClient
from citysoc.cli.common import JsonOpt, TenantOpt, api_refusals, console, err_console, load_settings, print_json_lines
from citysoc.wiring import case_client, embedded_case_app

contacts_app = typer.Typer(help="A member's notification contacts (email, signed webhooks).", no_args_is_help=True)
notifications_app = typer.Typer(help="The notification outbox and its delivery log.", no_args_is_help=True)

TenantArg = Annotated[str, typer.Argument(help="Member organisation (tenant id).")]


@contextmanager
def _client() -> Iterator[CaseClient]:
    """The admin's client; a refusal of the API becomes a one-line error and exit code 1."""
    with api_refusals(), case_client(load_settings(), role="admin") as client:
        yield client


@contacts_app.command("add")
def contacts_add(tenant: TenantArg,
                 email: Annotated[str | None, typer.Option(help="An email address.")] = None,
                 webhook: Annotated[str | None, typer.Option(help="An http(s) URL to POST signed JSON to.")] = None,
                 as_json: JsonOpt = False) -> None:
    """Add an email address or a webhook URL (exactly one) to a member's contacts."""
    if (email is None) == (webhook is None):
        err_console.print("[red]error:[/red] give exactly one of --email and --webhook")
        raise typer.Exit(2)
    channel, address = ("email", email) if email is not None else ("webhook", webhook)
    assert address is not None
    with _client() as client:
        contact = client.add_contact(tenant, channel=channel, address=address)
    if as_json:
        print_json_lines([contact])
        return
    console.print(f"contact {contact['id']} ({channel}) added for {tenant}")
    if contact.get("secret"):
        console.print(f"signing secret (Standard Webhooks; shown once, give it to the receiver): {contact['secret']}")


@contacts_app.command("list")
def contacts_list(tenant: TenantArg, as_json: JsonOpt = False) -> None:
    """A member's contacts (never their secrets)."""
    with _client() as client:
        contacts = client.list_contacts(tenant)
    if as_json:
        print_json_lines(contacts)
        return
    table = Table("id", "channel", "address", "added", "by", title=f"Contacts of {tenant}", title_justify="left")
    for contact in contacts:
        table.add_row(str(contact["id"]), contact["channel"], contact["address"], str(contact["created_at"])[:16],
                      contact["created_by"])
    console.print(table)


@contacts_app.command("remove")
def contacts_remove(tenant: TenantArg, contact_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1)]) -> None:
    """Remove a contact (what it had not been sent yet is not sent)."""
    with _client() as client:
        client.remove_contact(tenant, contact_id)
    console.print(f"contact {contact_id} of {tenant} removed")


@notifications_app.command("list")
def notifications_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
                       case: Annotated[int | None, typer.Option(help="Only this case's.", min=1,
                                                                max=2**31 - 1)] = None,
                       status: Annotated[str | None, typer.Option(help="pending, sent or failed.")] = None,
                       limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """The outbox, newest first: status, attempts and the last error of each notification."""
    with _client() as client:
        rows = client.list_notifications(tenant=tenant, case_id=case, status=status, limit=limit)
    if as_json:
        print_json_lines(rows)
        return
    table = Table("id", "case", "tenant", "event", "to", "status", "attempts", "last error", title="Notifications",
                  title_justify="left")
    for row in rows:
        table.add_row(str(row["id"]), str(row["case_id"]), row["tenant_id"], row["event"],
                      f"{row['audience']} {row['channel']}", row["status"], str(row["attempts"]),
                      row["last_error"] or "")
    console.print(table)


@notifications_app.command("send")
def notifications_send() -> None:
    """Deliver what is due now, once, from the embedded database (`soc api` and `soc run` do it continuously)."""
    settings = load_settings()
    if settings.api_url:
        err_console.print("[red]error:[/red] the API at SOC_API_URL sends its own notifications")
        raise typer.Exit(2)
    application, _keys = embedded_case_app(settings)
    try:
        report = application.state.outbox_drainer.drain_once()
    finally:
        application.state.engine.dispose()
    console.print(f"{report.sent} sent, {report.retried} to retry, {report.failed} failed")
