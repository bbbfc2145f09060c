"""`soc sources add|list|token|remove`: the log sources each tenant has onboarded (kept by the case API), how
their senders are recognised, what a partner configures, and whether their data arrives."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Annotated, Any

import typer

from case_api.sources.kinds import PULL_KINDS
from citysoc.cli.common import JsonOpt, TenantOpt, line_console, load_settings, plain_console, print_json_lines
from citysoc.cli.render import print_sources
from citysoc.onboarding import instructions, push_guidance
from citysoc.settings import Settings
from citysoc.wiring import case_client

app = typer.Typer(help="Log sources each tenant has onboarded.", no_args_is_help=True)

# Where the HTTP intake takes pushes. `citysoc/onboarding.py` (the intake's own) replaces this module's
# `instructions` at merge; until then this is the path the HTTP listener under way serves.
HTTP_INTAKE_PATH = "/v1/events"
_CA_PLACEHOLDER = "/etc/ssl/citysoc-ca.pem"


@app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="Name, unique within the tenant, e.g. 'web-01 auth.log'.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the source belongs to.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help=(
        "How records arrive: syslog-udp, syslog-tcp, syslog-tls, syslog-relp or http to `soc collect`; "
        "syslog, aws.cloudtrail or auditd from files (`soc ingest`); aws-s3, azure-eventhub, m365, gcp-pubsub, "
        "okta or github pulled by `soc pull`."))],
    network: Annotated[list[str] | None, typer.Option(
        "--network", "-n", help="Sender network (CIDR or one address); repeatable. How UDP/TCP senders are known.")]
    = None,
    account: Annotated[list[str] | None, typer.Option(
        "--account", help="Cloud account id its CloudTrail records may name; repeatable. Others are refused.")] = None,
    parser: Annotated[str | None, typer.Option(
        "--parser", "-p", help="Parser its records go to: syslog, aws.cloudtrail, auditd (http sources must say).")]
    = None,
    client_cert_sha256: Annotated[str | None, typer.Option(
        "--client-cert-sha256", help="Mutual TLS: SHA-256 fingerprint of the sender's client certificate.")] = None,
    client_cert: Annotated[Path | None, typer.Option(
        "--client-cert", exists=True, dir_okay=False, help="Mutual TLS: the sender's client certificate "
        "(PEM or DER); its fingerprint is pinned.")] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", "-d", help="Datasets it feeds (default: what its parser writes).")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--setting", metavar="KEY=VALUE", help="A pulled kind's setting (repeatable), e.g. bucket=trail-logs, "
        "token=env:OKTA_TOKEN. Credentials only as env:NAME or file:/path, never the secret. An http source "
        "takes a Pub/Sub push identity: push_service_account=EMAIL, push_audience=AUDIENCE.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a log source; for a listener kind, issue its credential and print what the partner configures."""
    if client_cert is not None:
        if client_cert_sha256 is not None:
            raise typer.BadParameter("give the certificate or its fingerprint, not both", param_hint="--client-cert")
        client_cert_sha256 = certificate_fingerprint(client_cert)
    pull_settings = _settings(setting or [])
    settings = load_settings()
    with case_client(settings, role="admin") as client:
        source = client.add_source(tenant_id=tenant, kind=kind, name=name, datasets=dataset or (), parser=parser,
                                   networks=network or (), cloud_accounts=account or (),
                                   certificate_sha256=client_cert_sha256, pull=pull_settings)
    guide = onboarding(settings, source)
    if as_json:
        print_json_lines([{**source, "instructions": guide}])
        return
    line_console.print(f"source [bold]{source['name']}[/bold] (id {source['id']}, {source['kind']}, parsed as "
                        f"{source['parser']}: {', '.join(source['datasets'])}) added for {source['tenant_id']}")
    if source.get("token"):
        line_console.print(f"bearer token (shown once, store it now): [bold]{source['token']}[/bold]")
    if source["parser"] == "aws.cloudtrail" and (source["transports"] or source["kind"] in PULL_KINDS) \
            and not source["cloud_accounts"]:
        line_console.print("note: no cloud account registered, so every CloudTrail record will be refused until "
                            "the city SOC adds the member's accounts")
    line_console.print(guide, markup=False)


@app.command("list")
def sources_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """List onboarded log sources with their data health (last event, events per minute, parse errors)."""
    with case_client(load_settings(), role="admin") as client:
        sources = client.list_sources(tenant=tenant)
    if as_json:
        print_json_lines(sources)
        return
    print_sources(plain_console, sources)


@app.command("token")
def sources_token(source_id: Annotated[int, typer.Argument(help="The http source's id (soc sources list).")]) -> None:
    """Issue an http source a new bearer token; the old one stops working at once."""
    settings = load_settings()
    with case_client(settings, role="admin") as client:
        source = client.issue_source_token(source_id)
    line_console.print(f"new bearer token for {source['tenant_id']}/{source['name']} (shown once, store it now): "
                        f"[bold]{source['token']}[/bold]")
    line_console.print(onboarding(settings, source), markup=False)


@app.command("remove")
def sources_remove(source_id: Annotated[int, typer.Argument(help="The source's id (soc sources list).")]) -> None:
    """Remove a source: its senders are refused once the intake reloads its sources."""
    with case_client(load_settings(), role="admin") as client:
        source = client.get_source(source_id)
        client.delete_source(source_id)
    plain_console.print(f"source {source['tenant_id']}/{source['name']} (id {source_id}) removed")


def _settings(pairs: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{key!r} is not KEY=VALUE", param_hint="--setting")
        settings[key.strip()] = value.strip()
    return settings


def certificate_fingerprint(path: Path) -> str:
    """SHA-256 of a certificate's DER bytes (what a TLS listener sees), from a PEM or DER file."""
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE REQUEST-----" in data or b"-----BEGIN NEW CERTIFICATE REQUEST-----" in data:
        raise typer.BadParameter(f"{path} is a certificate request: have it signed by the CA the intake trusts, then "
                                 "give the signed certificate", param_hint="--client-cert")
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            data = ssl.PEM_cert_to_DER_cert(data.decode("ascii", errors="replace"))
        except ValueError as error:
            raise typer.BadParameter(f"{path}: {error}", param_hint="--client-cert") from None
    elif not data.startswith(b"\x30"):  # DER: an ASN.1 SEQUENCE
        raise typer.BadParameter(f"{path} is neither a PEM nor a DER certificate", param_hint="--client-cert")
    return hashlib.sha256(data).hexdigest()


def onboarding(settings: Settings, source: dict[str, Any]) -> str:
    """What to tell the partner: the sender's configuration for a listener kind, what to grant for a pulled
    kind, the ingest line for a file kind."""
    pulled = PULL_KINDS.get(source["kind"])
    if pulled is not None:
        references = ", ".join(f"{name}={source['pull'][name]}" for name in pulled.secrets if name in source["pull"])
        return (f"what the member grants (least privilege): {pulled.grants}\n"
                f"credentials are read by `soc pull` from "
                f"{references or 'the default credentials of the machine it runs on (AWS: its credential chain)'}: "
                f"set them in its environment or files, never in the source. "
                f"Pull now: soc pull --once --source {source['id']}")
    port = settings.collect_port(source["kind"])
    if port is None:
        return (f"feed it from files: soc ingest --tenant {source['tenant_id']} --source {source['parser']} PATH...")
    guide = instructions(source["kind"], host=settings.collect_host, port=port, token=source.get("token"),
                         ca_file=settings.collect_ca_file, client_certificate=bool(source.get("certificate_sha256")))
    pull = source.get("pull") or {}
    identity = (pull["push_service_account"], pull["push_audience"]) if pull.get("push_audience") else None
    push = push_guidance(source.get("parser"), host=settings.collect_host, port=port,
                         token=source.get("token") or "<TOKEN>", https=bool(settings.collect_ca_file),
                         push_identity=identity) if source["kind"] == "http" else None
    return f"{guide}\n{push}\n" if push else guide
