"""`soc metrics`: time to acknowledge, triage and resolve (MTTA, MTTT, MTTR) per member and severity."""

from __future__ import annotations

from typing import Annotated

import typer

from citysoc.cli.common import (
    JsonOpt,
    TenantOpt,
    api_refusals,
    console,
    load_settings,
    parse_time,
    print_json_lines,
)
from citysoc.cli.render import print_metrics
from citysoc.wiring import case_client


def metrics(
    tenant: TenantOpt = None,
    since: Annotated[str | None, typer.Option(help="Cases opened at or after (ISO 8601; default 30 days ago).")] = None,
    until: Annotated[str | None, typer.Option(help="Cases opened before (ISO 8601; default now).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """MTTA, MTTT and MTTR with p50/p90/p95 and SLA breaches, per member and severity, over the cases opened in a
    period (the case API's /metrics: a member's key sees its own figures only)."""
    start, end = parse_time(since), parse_time(until)
    with api_refusals(), case_client(load_settings(), role="soc_analyst") as client:
        answer = client.metrics(tenant=tenant, since=start.isoformat() if start else None,
                                until=end.isoformat() if end else None)
    if as_json:
        print_json_lines([*answer["rows"], *answer["overall"]])
        return
    print_metrics(console, answer)
