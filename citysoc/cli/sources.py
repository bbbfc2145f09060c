"""`soc sources add|list`: the log sources each tenant has onboarded (kept by the case API)."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, TenantOpt, load_settings, plain_console, print_json_lines
from citysoc.cli.render import print_sources
from citysoc.wiring import case_client
from collectors.base import get_parser
from collectors.errors import UnknownParserError

app = typer.Typer(help="Log sources each tenant has onboarded.", no_args_is_help=True)


def datasets_of(kind: str) -> tuple[str, list[str]]:
    """The canonical kind and the datasets its collector writes; a kind without a collector keeps its name."""
    try:
        parser = get_parser(kind)
    except UnknownParserError:
        return kind, []
    return parser.name, list(parser.datasets)


@app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="Name, unique within the tenant, e.g. 'web-01 auth.log'.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the source belongs to.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="Collector kind: syslog, aws.cloudtrail, ...")],
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", "-d", help="Datasets it feeds (default: what the kind's collector writes).")] = None,
) -> None:
    """Register a log source a tenant has onboarded."""
    canonical, default_datasets = datasets_of(kind)
    datasets = list(dataset or default_datasets)
    if not datasets:
        raise typer.BadParameter(f"no collector for kind {kind!r} here: say which datasets it feeds with --dataset",
                                 param_hint="--dataset")
    with case_client(load_settings(), role="admin") as client:
        source = client.add_source(tenant_id=tenant, kind=canonical, name=name, datasets=datasets)
    plain_console.print(f"source [bold]{source['name']}[/bold] ({source['kind']}: {', '.join(source['datasets'])}) "
                        f"added for {source['tenant_id']}")


@app.command("list")
def sources_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """List onboarded log sources."""
    with case_client(load_settings(), role="admin") as client:
        sources = client.list_sources(tenant=tenant)
    if as_json:
        print_json_lines(sources)
        return
    print_sources(plain_console, sources)
