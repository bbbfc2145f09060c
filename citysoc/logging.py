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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
