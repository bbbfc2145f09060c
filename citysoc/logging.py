"""structlog set-up. Only entry points call `configure_logging`; libraries just log."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, fmt: str = "console", level: str = "WARNING") -> None:
    """JSON lines in production (`fmt="json"`), readable key=value output in a terminal."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.WARNING), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.WARNING)),
        logger_factory=_current_stderr,
        cache_logger_on_first_use=False,
    )


def _current_stderr(*_args: object) -> structlog.PrintLogger:
    """A logger on the stderr of the moment: one bound at set-up would outlive a replaced stream (a test
    runner's capture), and every later log line would fail on the closed file."""
    return structlog.PrintLogger(sys.stderr)
