"""`soc sources add|list`: the log sources each tenant has onboarded (kept by the case API)."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

sources_app = typer.Typer(help="Log sources each tenant has onboarded.", no_args_is_help=True)
console = Console(highlight=False)


def datasets_of(kind: str) -> tuple[str, list[str]]:
    """The canonical kind and the datasets its collector writes; a kind without a collector keeps its name."""
    from collectors.base import get_parser
    from collectors.errors import UnknownParserError

    try:
        parser = get_parser(kind)
    except UnknownParserError:
        return kind, []
    return parser.name, list(parser.datasets)


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="Name, unique within the tenant, e.g. 'web-01 auth.log'.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the source belongs to.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="Collector kind: syslog, aws.cloudtrail, ...")],
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", "-d", help="Datasets it feeds (default: what the kind's collector writes).")] = None,
) -> None:
    """Register a log source a tenant has onboarded."""
    from citysoc.cli import _settings
    from citysoc.wiring import case_client

    canonical, default_datasets = datasets_of(kind)
    datasets = list(dataset or default_datasets)
    if not datasets:
        raise typer.BadParameter(f"no collector for kind {kind!r} here: say which datasets it feeds with --dataset",
                                 param_hint="--dataset")
    with case_client(_settings(), role="admin") as client:
        source = client.add_source(tenant_id=tenant, kind=canonical, name=name, datasets=datasets)
    console.print(f"source [bold]{source['name']}[/bold] ({source['kind']}: {', '.join(source['datasets'])}) "
                  f"added for {source['tenant_id']}")


@sources_app.command("list")
def sources_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List onboarded log sources."""
    from citysoc.cli import _settings
    from citysoc.wiring import case_client

    with case_client(_settings(), role="admin") as client:
        sources = client.list_sources(tenant=tenant)
    if as_json:
        for source in sources:
            sys.stdout.write(orjson.dumps(source).decode() + "\n")
        return
    table = Table("tenant", "name", "kind", "datasets", "added")
    for source in sources:
        table.add_row(source["tenant_id"], source["name"], source["kind"], ", ".join(source["datasets"]),
                      str(source["created_at"])[:19])
    console.print(table)
