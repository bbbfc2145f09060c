"""`soc demo`: the whole pipeline on the embedded default, from an empty $SOC_HOME to a case queue.

Steps: register three member organisations, generate the city scenario and ingest it through the real
collectors, replay real public samples when `../shared/corpora` is present (the OpenSSH log of loghub
for the hospital, Stratus Red Team CloudTrail for the council), run detection with Spark (the
project's rules, plus SigmaHQ's aws and linux rules when the corpora are present), send the alerts to
the case API and print each tenant's case queue. Running it again adds nothing: ids are deterministic.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from citysoc.caseclient import CaseClientError
from citysoc.cli.common import console, load_settings
from citysoc.cli.flows import detect_once
from citysoc.cli.progress import ingest_with_progress
from citysoc.cli.render import print_campaigns, print_case_queue
from citysoc.scenario import TENANTS, CityScenario
from citysoc.settings import Settings
from citysoc.wiring import case_client

# The loghub OpenSSH sample has no year; its events are dated to this one (see collectors/README.md).
LOGHUB_YEAR = 2024


def default_corpora() -> Path:
    """`../shared/corpora` next to the repository."""
    return Path(__file__).resolve().parents[3] / "shared" / "corpora"


def demo(
    corpora: Annotated[Path | None, typer.Option(help="Shared corpora folder to replay (auto-detected).")] = None,
    use_corpora: Annotated[bool, typer.Option("--corpora/--no-corpora", help="Replay ../shared/corpora if present.")]
    = True,
) -> None:
    """From an empty $SOC_HOME: tenants, a city scenario (plus real samples), detection, the case queue."""
    run_demo(load_settings(), corpora=corpora, use_corpora=use_corpora)


def run_demo(settings: Settings, *, corpora: Path | None, use_corpora: bool) -> None:
    started = time.monotonic()
    settings.ensure_home()
    console.rule("CitySOC demo")
    console.print(f"data home: {settings.home.resolve()}")

    with case_client(settings, role="admin") as client:
        known = {tenant["id"] for tenant in client.list_tenants()}
        for tenant in TENANTS:
            if tenant.id not in known:
                try:
                    client.add_tenant(tenant.id, tenant.name)
                except CaseClientError as error:  # raced by another demo: the tenant exists, which is fine
                    if error.status != 409:
                        raise
    console.print("tenants: " + ", ".join(f"{t.id} ({t.name})" for t in TENANTS))

    console.rule("ingest")
    scenario = CityScenario().write(settings.home / "demo-input")
    for tenant_id, source, path in scenario.inputs:
        report = ingest_with_progress(settings, tenant=tenant_id, source=source, paths=[path], year=scenario.year,
                                      console=console)
        console.print(f"{tenant_id:<20} {source:<15} {report.summary()}")

    extra_rules: list[Path] = []
    corpora = corpora or default_corpora()
    if use_corpora and corpora.is_dir():
        console.print(f"replaying real samples from {corpora}")
        samples = [
            ("northgate-hospital", "syslog", corpora / "loghub" / "OpenSSH_2k.log", LOGHUB_YEAR),
            ("riverside-council", "aws.cloudtrail", corpora / "stratus", None),
        ]
        for tenant_id, source, path, year in samples:
            report = ingest_with_progress(settings, tenant=tenant_id, source=source, paths=[path], year=year,
                                          console=console)
            console.print(f"{tenant_id:<20} {source:<15} {report.summary()}  ({path.name})")
        extra_rules = [corpora / "sigmahq" / "rules" / "cloud" / "aws", corpora / "sigmahq" / "rules" / "linux"]
    elif use_corpora:
        console.print(f"no shared corpora at {corpora}: running on the generated scenario only")

    console.rule("detect")
    detect_once(settings, extra_rules=extra_rules, since=None, until=None, own_rules=True, console=console)

    console.rule("case queue")
    with case_client(settings, role="soc_analyst") as client:
        for tenant in TENANTS:
            print_case_queue(console, client.list_cases(tenant=tenant.id), title=f"{tenant.name} ({tenant.id})")
        console.rule("city-wide campaigns")
        print_campaigns(console, client.list_campaigns())
    console.print(
        f"\nfinished in {time.monotonic() - started:.0f} s. Next:\n"
        "  soc cases list            the queue (add --json for one object per line)\n"
        "  soc campaigns list        indicators seen at several member organisations, with their cases\n"
        "  soc alerts list --json    the alerts behind it\n"
        f"  soc api                   serve the case API at http://127.0.0.1:8000/api/v1/docs;\n"
        f"                            API keys (admin, analyst, service) are in {settings.secrets_file}"
    )
