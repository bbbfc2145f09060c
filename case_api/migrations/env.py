"""Alembic environment of the case API.

``case_api.db.upgrade_database`` hands over an open connection in ``config.attributes``. When run
from the ``alembic`` command line (``alembic -c case_api/alembic.ini ...``) the database URL comes
from ``-x database_url=...`` or the ``SOC_`` settings. Logging is left to the caller.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from case_api.db import make_engine
from case_api.models import metadata
from case_api.settings import Settings


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("database_url")
    if url:
        return url
    return Settings().effective_database_url


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("case API migrations run online only: give a database URL")
run_migrations_online()
