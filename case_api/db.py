"""Database plumbing: engine, sessions, column types and programmatic Alembic migrations.

The same models and migrations run on SQLite (embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, Select, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.types import TypeDecorator

from citysoc.files import ensure_private_dir, ensure_private_file

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Stable constraint names, so migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every case API table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        zone = value.tzinfo
        if zone is UTC:  # PostgreSQL's, in sessions set to UTC (make_engine)
            return value
        if zone is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_database_url(url: str) -> str:
    """Point bare ``postgresql://`` URLs at psycopg 3, the driver CitySOC ships with."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


#: Requests an API process works on at once, and the worker threads it runs their sync endpoints and
#: dependencies on (``middleware.Admission``; AnyIO's default is 40 threads): on a few cores more only queue
#: on the GIL.
API_THREADS = 16

#: Connections an engine may hold: more than the requests admitted at once (each holds at most its session's
#: connection) plus the outbox drainer's, so no request waits for one; opened on demand, 8 kept. On PostgreSQL
#: the hot reads have a pool of their own of API_THREADS, all kept (:func:`make_read_engine`): `soc api --workers N`
#: opens up to N times 36 connections, which must fit PostgreSQL's max_connections (100 by default).
POOL: dict[str, Any] = {"pool_size": 8, "max_overflow": API_THREADS + 4 - 8}


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and its directory created."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=_pg_connect_args(url),
                             **POOL)

    database = parsed.database
    # hide_parameters: an error message never carries the values of a statement (secrets, raw alerts).
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": 30}, "hide_parameters": True, **POOL
    }
    if not database or database == ":memory:":
        # One shared connection, or every pool checkout would see its own empty database.
        kwargs["poolclass"] = StaticPool
        for key in POOL:
            del kwargs[key]
    else:
        # The case database holds every tenant's cases: owner-only, and so are its journal and WAL
        # files, which SQLite creates with the database file's mode.
        path = Path(database).expanduser()
        if not path.parent.exists():
            ensure_private_dir(path.parent)
        ensure_private_file(path)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _pg_connect_args(url: str) -> dict[str, Any]:
    # Sessions in UTC: psycopg then reads timestamptz values as UTC datetimes itself (with the server's zone,
    # Etc/UTC here, every value was converted again in Python). No statement depends on the session's zone
    # (the one that formats a day names UTC itself).
    given = make_url(url).query.get("options") or ()
    return {"options": " ".join([*([given] if isinstance(given, str) else given), "-c TimeZone=UTC"])}


def make_read_engine(engine: Engine) -> Engine:
    """The engine of the hot reads (the queue page, the case detail): on PostgreSQL a second pool of autocommit
    connections without a ping on checkout, so a read of one statement is one round trip (with ``engine`` it is
    four: the ping, BEGIN, the statement, ROLLBACK). Each statement sees its own snapshot, as under READ
    COMMITTED within a transaction. A connection found dead is retried once by :func:`read_retrying`. Every
    connection it opens is kept (a request holds at most one): with 4 kept and the rest overflow, each rise in
    the requests at once opened new connections and each fall closed them, about 40 a second under the bench's
    load, each a PostgreSQL backend started and a connect on a worker thread.
    SQLite: ``engine`` itself (its reads take no round trip).
    """
    if engine.dialect.name != "postgresql":
        return engine
    url = engine.url.render_as_string(hide_password=False)
    reads = create_engine(url, isolation_level="AUTOCOMMIT", hide_parameters=True,
                          connect_args=_pg_connect_args(url), pool_size=API_THREADS, max_overflow=0)
    # Disposed with the engine it reads beside (``app.state.engine.dispose()``).
    event.listen(engine, "engine_disposed", lambda _engine: reads.dispose())
    return reads


def make_write_engine(read_engine: Engine) -> Engine:
    """The engine of the hot write (a case's PATCH): on PostgreSQL the read engine's pool, its connections taken out
    of autocommit (READ COMMITTED transactions, as the main engine's) while checked out. No ping on checkout: the
    change's first statement, on a connection found dead, is tried again on a new one (``cases.service.update_case``).
    SQLite: ``read_engine``, which is the main engine there.
    """
    if read_engine.dialect.name != "postgresql":
        return read_engine
    return read_engine.execution_options(isolation_level="READ COMMITTED")


def read_retrying(factory: Callable[[], Session], read: Callable[[Session], T]) -> T:
    """``read`` on a session of ``factory`` (the read engine's), once more on a new connection if the first
    one's connection was found dead (the server restarted, say): the pool has no ping to find it before."""
    for attempt in range(2):
        with factory() as session:
            try:
                return read(session)
            except DBAPIError as error:
                if attempt or not error.connection_invalidated:
                    raise
    raise AssertionError("unreachable")


class DriverStatements:
    """Statements as the driver's SQL and fixed parameters (a scope's tenants, literals), compiled once per key: a
    statement sent by psycopg itself skips SQLAlchemy's per-execution work (its cache key, the result's
    processing), which on the hottest requests cost as much as the database's answer (cases/patch.py,
    cases/detail.py). For statements whose parameters and columns need no type's conversion on PostgreSQL (its
    sessions are in UTC: timestamps read as the models' UTC datetimes; JSON read by psycopg as ``json.loads``
    reads it)."""

    def __init__(self) -> None:
        self._sql: dict[Hashable, tuple[str, dict[str, Any]]] = {}

    def get(self, dialect: Dialect, key: Hashable, build: Callable[[], Select[Any]],
            given: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The statement ``build`` makes as SQL and its fixed parameters; those named ``given`` are passed at each
        execution."""
        found = self._sql.get(key)
        if found is None:
            expanded = build().compile(dialect=dialect).construct_expanded_state(dict.fromkeys(given))
            found = self._sql[key] = (expanded.statement,
                                      {k: v for k, v in expanded.parameters.items() if k not in given})
        return found


def _enable_sqlite_foreign_keys(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configuration built in code, so migrations run from any cwd or installed package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_database(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (default: the newest migration)."""
    _run_migration(url_or_engine, lambda config: command.upgrade(config, revision))


def downgrade_database(url_or_engine: str | Engine, revision: str) -> None:
    """Take the database schema back to ``revision`` (``"base"`` drops every table)."""
    _run_migration(url_or_engine, lambda config: command.downgrade(config, revision))


def _run_migration(url_or_engine: str | Engine, run: Callable[[Config], None]) -> None:
    owns_engine = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            run(config)
    finally:
        if owns_engine:
            engine.dispose()


#: A dialect's ``insert()``: both offer ``on_conflict_do_nothing`` with the same arguments.
InsertFactory = Callable[[type[Base]], postgresql.Insert | sqlite.Insert]


def insert_for(session: Session) -> InsertFactory:
    """The dialect's ``insert`` construct, which offers ``on_conflict_do_nothing``.

    Both SQLite and PostgreSQL support ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, which makes
    idempotent writes race-free without savepoints.
    """
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"case API supports SQLite and PostgreSQL, not {name}")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: one session per request, from the app's session factory.

    Made on the event loop (no I/O until its first statement, which runs on a worker thread with the endpoint),
    and closed on a worker thread when it holds a transaction (closing rolls back: a round trip), shielded from
    cancellation and outside the thread pool's limit, as FastAPI closes a sync dependency, so a request that
    was cancelled still gives its connection back. The hottest endpoints close it themselves once their answer
    is built, on the thread they run on, which saves that last hop.
    """
    factory: sessionmaker[Session] = request.app.state.session_factory
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
