"""`soc collect`: the intake service in the foreground (syslog UDP/TCP/TLS, RELP, HTTP) with its drainer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from citysoc.cli.common import load_settings, parse_duration_option
from citysoc.logging import configure_logging
from citysoc.wiring import intake_service, intake_tls
from collectors.allocator import use_system_allocator
from collectors.listeners.config import DEFAULT_LISTENERS, ListenAddressError, ListenerKind, ListenerPlan

_ADDR = "HOST:PORT"


def _listen(kind: ListenerKind, what: str) -> object:
    default = DEFAULT_LISTENERS.get(kind)
    suffix = f" Default {default} when no listener is given." if default else ""
    return typer.Option(f"--{kind}", metavar=_ADDR, help=f"Listen for {what} here (repeatable).{suffix}")


def collect(
    syslog_udp: Annotated[list[str] | None, _listen("syslog-udp", "syslog over UDP")] = None,
    syslog_tcp: Annotated[list[str] | None, _listen("syslog-tcp", "syslog over TCP (RFC 6587 framing)")] = None,
    syslog_tls: Annotated[list[str] | None, _listen("syslog-tls", "syslog over TLS (RFC 5425)")] = None,
    relp: Annotated[list[str] | None, _listen("relp", "RELP (rsyslog's omrelp)")] = None,
    relp_tls: Annotated[list[str] | None, _listen("relp-tls", "RELP over TLS")] = None,
    http: Annotated[list[str] | None, _listen("http", "HTTP intake (POST /v1/events)")] = None,
    https: Annotated[list[str] | None, _listen("https", "HTTPS intake (POST /v1/events)")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        help="Server certificate (PEM, chain). Default: the intake's own, made under $SOC_HOME/tls.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Key of --tls-cert (PEM).")] = None,
    tls_client_ca: Annotated[list[Path] | None, typer.Option(
        metavar="PATH", help="Also accept client certificates issued by this CA (repeatable).")] = None,
    server_name: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="Name or address partners dial, for the certificate made here (repeatable)")] = None,
    reload_every: Annotated[str, typer.Option(
        metavar="DURATION", help="How often the source registry is reloaded (SIGHUP reloads at once).")] = "30s",
) -> None:
    """Receive logs from member organisations and store them, until SIGTERM or Ctrl-C.

    A sender's tenant comes from its credential (HTTP token, TLS client certificate) or its network, never
    from what it sends; senders no source claims are refused and logged.
    """
    settings = load_settings()
    use_system_allocator()
    if "log_level" not in settings.model_fields_set:  # a foreground service says where it listens
        configure_logging(fmt=settings.log_format, level="INFO")
    # libraries log through the standard library (the case API's migrations at each registry load, httpx,
    # uvicorn) in plain lines at INFO: the service's log stays one format, its own events and their warnings
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    every = parse_duration_option(reload_every, "--reload-every")
    assert every is not None
    try:
        plan = ListenerPlan.of({"syslog-udp": syslog_udp or [], "syslog-tcp": syslog_tcp or [],
                                "syslog-tls": syslog_tls or [], "relp": relp or [], "relp-tls": relp_tls or [],
                                "http": http or [], "https": https or []})
    except ListenAddressError as error:
        raise typer.BadParameter(str(error)) from None
    tls = intake_tls(settings, certificate=tls_cert, key=tls_key, client_cas=tls_client_ca or [],
                     server_names=server_name or []) if plan.needs_tls() else None
    intake_service(settings, plan, tls=tls, reload_every=every.total_seconds()).serve()
