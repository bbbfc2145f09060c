"""`soc detect`: one detection pass, or (`--every`) the long-lived detection service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citysoc.cli.common import console, load_settings, parse_duration_option, parse_time
from citysoc.cli.flows import detect_once, start_detection
from citysoc.schedule import format_duration


def detect(
    rules: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Extra Sigma rule folders.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this time (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Only events before this time (ISO-8601).")] = None,
    own_rules: Annotated[bool, typer.Option(help="Include the project's detection_rules/.")] = True,
    every: Annotated[str | None, typer.Option(
        help="Keep running: detect every DURATION (30s, 5m, 1h) over the events since the previous run, "
             "with Spark and the compiled rules kept warm. Ctrl-C or SIGTERM stops it.")] = None,
    lookback: Annotated[str | None, typer.Option(
        help="With --every: each run re-reads this much before the previous run's end, for late events and "
             "correlation windows across runs (default: the longest correlation timespan, at least 5m).")] = None,
    runs: Annotated[int, typer.Option(help="With --every: stop after this many runs (0: until stopped).",
                                      min=0)] = 0,
) -> None:
    """Run Sigma detection and correlation rules over the event store, then send alerts to the case API."""
    # Every option is checked before Spark starts: a typo costs nothing.
    interval = parse_duration_option(every, "--every")
    look_back = parse_duration_option(lookback, "--lookback")
    if interval is None and (look_back is not None or runs):
        raise typer.BadParameter("--lookback and --runs only apply with --every", param_hint="--every")
    if interval is not None and until is not None:
        raise typer.BadParameter("--every runs up to the present: it takes --since, not --until",
                                 param_hint="--until")
    settings = load_settings()
    if interval is None:
        detect_once(settings, extra_rules=rules or [], since=parse_time(since), until=parse_time(until),
                    own_rules=own_rules, console=console)
        return
    start = parse_time(since)
    try:
        service = start_detection(settings, extra_rules=rules or [], own_rules=own_rules, console=console)
        if look_back is None:
            look_back = service.default_lookback()
        console.print(f"detecting every {format_duration(interval)} (look-back {format_duration(look_back)}); "
                      "Ctrl-C or SIGTERM stops after the current run")
        service.run(every=interval, lookback=look_back, since=start, runs=runs)
    except KeyboardInterrupt:
        console.print("stopped")
