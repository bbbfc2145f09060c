"""`soc tenants add|list|contract`: the member organisations and their SLA contracts (kept by the case API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from citysoc.caseclient import CaseClientError
from citysoc.cli.common import JsonOpt, api_refusals, console, err_console, load_settings, print_json_lines
from citysoc.cli.render import print_contract, print_tenants
from citysoc.retention import retention_of
from citysoc.settings import Settings
from citysoc.tenancy import validate_tenant_id
from citysoc.wiring import case_client, elasticsearch_store

app = typer.Typer(help="Member organisations (tenants).", no_args_is_help=True)

ContractFile = Annotated[Path | None, typer.Option(
    "--contract", help="SLA contract file (YAML or JSON: calendar and targets; see case_api/README.md).",
    exists=True, dir_okay=False, readable=True)]


def read_contract(path: Path) -> dict[str, Any]:
    """A contract document from a YAML or JSON file; the API checks its content."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: cannot read a contract from it: {exc}", param_hint="--contract") from None
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path}: a contract is a mapping with `targets` (and `calendar`)",
                                 param_hint="--contract")
    # YAML reads dates (holidays) as dates: as JSON they are the ISO text the API takes.
    converted: dict[str, Any] = orjson.loads(orjson.dumps(document, default=str))
    return converted


@app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="Slug, e.g. northgate-hospital.")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
    contract: ContractFile = None,
) -> None:
    """Register a member organisation (with its SLA contract, else the default applies)."""
    settings = load_settings()
    validate_tenant_id(tenant_id)
    document = read_contract(contract) if contract else None
    elasticsearch_store(settings)  # a misconfigured event store fails before the tenant is added
    with case_client(settings, role="admin") as client:
        tenant = client.add_tenant(tenant_id, name or tenant_id)
        if document is not None:
            try:
                client.set_contract(tenant_id, document)
            except CaseClientError as exc:
                err_console.print(f"[red]error:[/red] tenant {tenant_id} added, but not its contract: {exc}")
                raise typer.Exit(1) from None
    console.print(f"tenant [bold]{tenant['id']}[/bold] added" + (" with its SLA contract" if document else ""))
    role = apply_to_event_store(settings, tenant_id, document)
    if role is not None:
        console.print(f"Elasticsearch role [bold]{role}[/bold]: read-only, {tenant_id}'s own documents "
                      "(give it to the member's Kibana users)")


def apply_to_event_store(settings: Settings, tenant_id: str, contract: dict[str, Any] | None) -> str | None:
    """With Elasticsearch as the event store: the member's role (its own data streams, document-level security on
    organization.id) and its retention (ILM policy); returns the role's name. The embedded lake needs nothing."""
    store = elasticsearch_store(settings)
    if store is None:
        return None
    return store.ensure_tenant(tenant_id, retention_of(contract))


@app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List member organisations."""
    with case_client(load_settings(), role="admin") as client:
        tenants = client.list_tenants()
    if as_json:
        print_json_lines(tenants)
        return
    print_tenants(console, tenants)


@app.command("contract")
def tenants_contract(
    tenant_id: Annotated[str, typer.Argument(help="The member.")],
    contract: ContractFile = None,
    default: Annotated[bool, typer.Option("--default", help="Put the member back on the default contract.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a member's SLA contract, or set it from a file (--contract) or back to the default (--default)."""
    if contract and default:
        raise typer.BadParameter("give either --contract FILE or --default", param_hint="--default")
    document = read_contract(contract) if contract else None
    settings = load_settings()
    with api_refusals(), case_client(settings, role="admin") as client:
        if document is not None or default:
            answer = client.set_contract(tenant_id, document)
        else:
            answer = client.get_contract(tenant_id)
    if document is not None or default:
        apply_to_event_store(settings, tenant_id, document)
    if as_json:
        print_json_lines([answer])
        return
    print_contract(console, answer)
