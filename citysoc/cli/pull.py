"""`soc pull`: pull the registered cloud and identity sources (aws-s3, azure-eventhub, m365, gcp-pubsub, okta,
github) from their providers' APIs into the lake, once or every interval, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from citysoc.cli.common import line_err_console, load_settings, parse_duration_option
from citysoc.logging import configure_logging
from citysoc.wiring import pull_service


def pull(
    once: Annotated[bool, typer.Option("--once", help="Poll every source once, store what came, and exit.")] = False,
    every: Annotated[str, typer.Option(metavar="DURATION", help="How often each source is polled.")] = "60s",
    source: Annotated[list[str] | None, typer.Option(
        "--source", "-s", metavar="NAME|ID", help="Only this source (repeatable); default every pulled source.")]
    = None,
) -> None:
    """Pull the registered cloud sources: fetch, spool, checkpoint, store.

    Credentials are read from this process's environment or files, as each source's settings refer to them
    (env:NAME, file:/path). A restart neither loses nor repeats: each source resumes from its checkpoint,
    and what was fetched but not checkpointed is fetched again and stored once.
    """
    interval = parse_duration_option(every, "--every")
    assert interval is not None
    settings = load_settings()
    if "log_level" not in settings.model_fields_set:
        configure_logging(fmt=settings.log_format, level="INFO")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    service = pull_service(settings, only=source or ())
    try:
        if once:
            report = service.runner.poll()
            while service.drainer.run_once():
                pass
            line_err_console.print(f"pulled {report.records} records in {report.batches} batches, "
                                   f"{report.dead_lettered} dead-lettered")
            for name, reason in report.failed.items():
                line_err_console.print(f"source {name} failed: {reason}")
            if report.failed:
                raise typer.Exit(1)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        drainer = threading.Thread(target=service.drainer.run, args=(stop,), name="pull-drainer")
        drainer.start()
        service.runner.run(stop, every=interval.total_seconds())
        drainer.join()
    finally:
        service.spool.close()
