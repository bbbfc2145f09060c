"""`soc run`: the whole live SOC on one machine, as one supervised command.

Four parts, each a `soc` command in a process of its own (`citysoc.supervisor`): the case API (`soc api`),
the intake (`soc collect`: listeners, spool and drainer), the cloud pulls (`soc pull --every`: the pulled
sources, their own spool and drainer) and continuous detection (`soc detect --every`, Spark kept warm,
selecting by arrival). The intake, pulls and detection reach the case API over HTTP with the service key, as
they would on separate machines. Started in that order, each once the one before is ready; stopped intake
first (stop accepting, flush the spool into the lake), then the pulls (finish the batch in hand), then
detection (finish the cycle, write the checkpoint), then the API.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from typing import Annotated

import httpx
import typer

from citysoc.cli.common import line_err_console, load_settings, parse_duration_option
from citysoc.logging import configure_logging
from citysoc.settings import Settings
from citysoc.supervisor import Part, Supervisor
from citysoc.wiring import bootstrap_keys
from collectors.listeners.config import ListenAddress, ListenAddressError, ListenerKind

_UDP_KINDS: frozenset[str] = frozenset({"syslog-udp"})


def _free_port(address: ListenAddress, *, udp: bool = False) -> ListenAddress:
    """`address` with port 0 replaced by a port free now (so every part can be told where the others are)."""
    if address.port:
        return address
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as probe:
        probe.bind((address.host, 0))
        return ListenAddress(address.host, probe.getsockname()[1])


def _api_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _parse(text: str, option: str) -> ListenAddress:
    try:
        return ListenAddress.parse(text)
    except ListenAddressError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def live_parts(settings: Settings, *, api: ListenAddress, listeners: dict[ListenerKind, list[ListenAddress]],
               every: str, detect_args: list[str], master: str | None, pull_every: str = "60s") -> list[Part]:
    """The case API, the intake, the pulls and detection as child processes of this interpreter."""
    keys = bootstrap_keys(settings)  # the API's first start would make them too; made here, they are known
    api_url = f"http://{api}"
    base = {name: value for name, value in os.environ.items() if not name.startswith(("SOC_API_URL", "SOC_API_KEY"))}
    # their consoles are pipes here: wide enough that each line of theirs stays one line of ours
    base.update(SOC_HOME=str(settings.home), PYTHONUNBUFFERED="1", COLUMNS="200")
    clients = {**base, "SOC_API_URL": api_url, "SOC_API_KEY": keys["service"]}
    if master:
        clients["SOC_SPARK_MASTER"] = master
    soc = [sys.executable, "-m", "citysoc.cli"]
    intake_args = [arg for kind, addresses in listeners.items() for address in addresses
                   for arg in (f"--{kind}", str(address))]
    return [
        Part("case-api", [*soc, "api", "--host", api.host, "--port", str(api.port)], base,
             ready=lambda: _api_ready(api_url), stop_timeout=30),
        Part("intake", [*soc, "collect", *intake_args], clients, stop_timeout=120),
        Part("pull", [*soc, "pull", "--every", pull_every], clients, stop_timeout=120),
        Part("detection", [*soc, "detect", "--every", every, *detect_args], clients, stop_timeout=300),
    ]


def run(
    api: Annotated[str, typer.Option(metavar="HOST:PORT", help="Where the case API listens (port 0: a free one).")]
    = "127.0.0.1:8000",
    syslog_udp: Annotated[list[str] | None, typer.Option("--syslog-udp", metavar="HOST:PORT",
                                                         help="Syslog over UDP (repeatable; port 0: a free one).")]
    = None,
    syslog_tcp: Annotated[list[str] | None, typer.Option("--syslog-tcp", metavar="HOST:PORT",
                                                         help="Syslog over TCP (repeatable).")] = None,
    syslog_tls: Annotated[list[str] | None, typer.Option("--syslog-tls", metavar="HOST:PORT",
                                                         help="Syslog over TLS (repeatable).")] = None,
    relp: Annotated[list[str] | None, typer.Option("--relp", metavar="HOST:PORT", help="RELP (repeatable).")] = None,
    http: Annotated[list[str] | None, typer.Option("--http", metavar="HOST:PORT",
                                                   help="HTTP intake (repeatable).")] = None,
    every: Annotated[str, typer.Option(help="How often detection looks for new arrivals (a cycle with none costs "
                                            "one index query).")] = "1s",
    rules: Annotated[list[str] | None, typer.Option("--rules", "-r", help="Extra Sigma rule folders.")] = None,
    own_rules: Annotated[bool, typer.Option(help="Include the project's detection_rules/.")] = True,
    lookback: Annotated[str | None, typer.Option(help="Detection's look-back (see `soc detect --help`).")] = None,
    allowed_lateness: Annotated[str | None, typer.Option(
        help="Detection's allowed lateness (see `soc detect --help`).")] = None,
    master: Annotated[str | None, typer.Option(
        help="Spark master for detection (default $SOC_SPARK_MASTER, local[2]); e.g. spark://host:7077.")] = None,
    pull_every: Annotated[str, typer.Option(help="How often the pulled sources (soc pull) are polled.")] = "60s",
) -> None:
    """Run the live SOC: case API, intake (listeners, spool, drainer), cloud pulls and continuous detection.

    SIGTERM or Ctrl-C stops it in order: intake (spool flushed), pulls, detection (checkpoint written), case API.
    A part that dies is restarted; one that keeps dying stops everything with its last lines.
    """
    for value, option in ((every, "--every"), (lookback, "--lookback"), (allowed_lateness, "--allowed-lateness"),
                          (pull_every, "--pull-every")):
        parse_duration_option(value, option)  # checked here, before anything starts
    settings = load_settings()
    if "log_level" not in settings.model_fields_set:  # a foreground service says what it starts and stops
        configure_logging(fmt=settings.log_format, level="INFO")
        logging.getLogger().setLevel(logging.WARNING)  # libraries' own INFO lines stay out
    settings.ensure_home()
    api_address = _free_port(_parse(api, "--api"))
    given: dict[ListenerKind, list[str]] = {"syslog-udp": syslog_udp or [], "syslog-tcp": syslog_tcp or [],
                                            "syslog-tls": syslog_tls or [], "relp": relp or [], "http": http or []}
    listeners: dict[ListenerKind, list[ListenAddress]] = {
        kind: [_free_port(_parse(text, f"--{kind}"), udp=kind in _UDP_KINDS) for text in texts]
        for kind, texts in given.items() if texts}
    detect_args = [arg for folder in rules or [] for arg in ("--rules", folder)]
    detect_args += [] if own_rules else ["--no-own-rules"]
    detect_args += ["--lookback", lookback] if lookback else []
    detect_args += ["--allowed-lateness", allowed_lateness] if allowed_lateness else []
    parts = live_parts(settings, api=api_address, listeners=listeners, every=every, detect_args=detect_args,
                       master=master, pull_every=pull_every)
    line_err_console.print(f"case API on http://{api_address}/api/v1 (API keys: {settings.secrets_file})")
    for kind, addresses in listeners.items():
        line_err_console.print(f"intake {kind} on {', '.join(map(str, addresses))}")
    supervisor = Supervisor(parts, stop_order=["intake", "pull", "detection", "case-api"])
    supervisor.run(threading.Event())
    line_err_console.print("stopped")
