"""The application of one `soc api` worker process: uvicorn imports this module by name in each worker, so it
imports only what the case API needs (not the CLI, not Spark)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from case_api.app import create_app
from case_api.settings import Settings as CaseSettings
from citysoc.logging import configure_logging
from citysoc.settings import Settings


def default_workers(database_url: str | None) -> int:
    """One process per core on PostgreSQL; one on SQLite, whose single writer lock more processes only queue on."""
    if not database_url or database_url.startswith("sqlite"):
        return 1
    return max(1, os.cpu_count() or 1)


def worker_app() -> FastAPI:
    """The case API from the environment, as `soc api` configured it; the parent process migrated the database
    and made the bootstrap keys before starting the workers."""
    settings = Settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return create_app(CaseSettings(home=settings.home, database_url=settings.database_url), migrate=False)
