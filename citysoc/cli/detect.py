"""`soc detect`: one detection pass, or (`--every`) the long-lived detection service."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from citysoc.cli.common import console, load_settings, parse_duration_option, parse_time
from citysoc.cli.flows import detect_once, start_detection
from citysoc.detection_service import stop_on_sigterm
from citysoc.schedule import DEFAULT_ALLOWED_LATENESS, format_duration


def detect(
    rules: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Extra Sigma rule folders.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only events at or after this time (ISO-8601). With --every: events before it are never evaluated.")]
    = None,
    until: Annotated[str | None, typer.Option(help="Only events before this time (ISO-8601).")] = None,
    own_rules: Annotated[bool, typer.Option(help="Include the project's detection_rules/.")] = True,
    every: Annotated[str | None, typer.Option(
        help="Keep running: every DURATION (1s, 30s, 5m) evaluate what arrived in the store since the previous "
             "cycle, whatever its event time, with Spark and the compiled rules kept warm. Resumes from its "
             "checkpoint. Ctrl-C or SIGTERM stops it after the current cycle.")] = None,
    lookback: Annotated[str | None, typer.Option(
        help="With --every: how much event time around new events each cycle reads, so correlation windows "
             "see older and newer events (default: the longest correlation timespan, at least 5m).")] = None,
    allowed_lateness: Annotated[str | None, typer.Option(
        help="With --every: events whose time is older than this when they arrive are reported, not evaluated "
             f"(default {format_duration(DEFAULT_ALLOWED_LATENESS)}).")] = None,
    runs: Annotated[int, typer.Option(help="With --every: stop after this many cycles (0: until stopped).",
                                      min=0)] = 0,
    master: Annotated[str | None, typer.Option(
        help="Spark master (default $SOC_SPARK_MASTER, local[2]), e.g. spark://host:7077 or yarn: the same "
             "detection runs on a cluster whose workers read the same event store.")] = None,
) -> None:
    """Run Sigma detection and correlation rules over the event store, then send alerts to the case API."""
    # Every option is checked before Spark starts: a typo costs nothing.
    interval = parse_duration_option(every, "--every")
    look_back = parse_duration_option(lookback, "--lookback")
    lateness = parse_duration_option(allowed_lateness, "--allowed-lateness")
    if interval is None and (look_back is not None or lateness is not None or runs):
        raise typer.BadParameter("--lookback, --allowed-lateness and --runs only apply with --every",
                                 param_hint="--every")
    if interval is not None and until is not None:
        raise typer.BadParameter("--every runs up to the present: it takes --since, not --until",
                                 param_hint="--until")
    settings = load_settings()
    if master:
        settings = settings.model_copy(update={"spark_master": master})
    if interval is None:
        detect_once(settings, extra_rules=rules or [], since=parse_time(since), until=parse_time(until),
                    own_rules=own_rules, console=console)
        return
    floor = parse_time(since)
    stop = threading.Event()
    try:
        with stop_on_sigterm(stop):  # a SIGTERM while Spark starts stops before any cycle
            service = start_detection(settings, extra_rules=rules or [], own_rules=own_rules, console=console)
            if look_back is None:
                look_back = service.default_lookback()
            lateness = lateness or DEFAULT_ALLOWED_LATENESS
            console.print(f"detecting every {format_duration(interval)} what arrived since the last cycle "
                          f"(look-back {format_duration(look_back)}, allowed lateness {format_duration(lateness)}); "
                          "Ctrl-C or SIGTERM stops after the current cycle")
            service.run(every=interval, lookback=look_back, allowed_lateness=lateness, since=floor, runs=runs,
                        stop=stop)
    except KeyboardInterrupt:
        console.print("stopped")
