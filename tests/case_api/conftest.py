"""Case API test fixtures: real SQLite and PostgreSQL databases, small builders.

Every test that uses ``db_url`` runs once per backend. The PostgreSQL run is marked ``service``
and skipped (with the reason) when no server answers at 127.0.0.1:5432. Each backend's database
is migrated once per session; every test starts from empty tables.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete

from case_api.app import create_app
from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.service import create_api_key
from case_api.db import make_engine, upgrade_database
from case_api.models import metadata
from case_api.settings import Settings
from citysoc.caseclient import InProcessTransport

POSTGRES_ADMIN_DSN = os.environ.get(
    "SOC_TEST_POSTGRES_DSN",
    "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3",
)

Headers = dict[str, str]


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)],
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, session-wide database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('case-db') / 'cases.db'}"
        upgrade_database(url)
        yield url
        return
    yield from _postgres_database()


def _postgres_database() -> Iterator[str]:
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({POSTGRES_ADMIN_DSN}): {exc}".strip())
    name = f"citysoc_case_api_{uuid.uuid4().hex[:12]}"
    info = admin.info
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
        try:
            upgrade_database(url)
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_db(db_engine: Engine) -> Engine:
    """Empty every table (children first), so each test starts from a blank database."""
    with db_engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))
    return db_engine


@pytest.fixture
def settings(tmp_path: Path, db_url: str, clean_db: Engine) -> Settings:
    return Settings(home=tmp_path / "soc-home", database_url=db_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


def http_client(app: FastAPI) -> httpx.Client:
    """An HTTP client of the application in this process (the transport the CLI uses)."""
    return httpx.Client(transport=InProcessTransport(app), base_url="http://testserver")


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with http_client(app) as http:
        yield http


class SocApi:
    """Drives the API as a given role: issues keys, registers tenants, posts alerts."""

    def __init__(self, client: httpx.Client, app: FastAPI) -> None:
        self.client = client
        self._session_factory = app.state.session_factory
        self.admin = self.headers(Role.ADMIN)
        self.analyst = self.headers(Role.SOC_ANALYST)
        self.service = self.headers(Role.SERVICE)

    def headers(self, role: Role, tenant: str | None = None, name: str | None = None) -> Headers:
        """Issue an API key straight in the database and return its auth header.

        The key belongs to the user ``name`` (made with ``role`` and ``tenant`` unless it exists with
        them); by default ``test-<role>``, or ``test-<role>-<tenant>`` for a tenant role.
        """
        user = name or (f"test-{role.value}-{tenant}" if tenant else f"test-{role.value}")
        with self._session_factory() as session:
            _, secret = create_api_key(session=session, key_in=ApiKeyIn(name=user, role=role, tenant_id=tenant))
        return {"Authorization": f"Bearer {secret}"}

    def add_tenant(self, tenant_id: str, name: str | None = None) -> None:
        response = self.client.post(
            "/api/v1/tenants", json={"id": tenant_id, "name": name or tenant_id}, headers=self.admin
        )
        assert response.status_code == 201, response.text

    def post_alerts(self, *alerts: dict[str, Any], headers: Headers | None = None) -> Any:
        return self.client.post("/api/v1/alerts", json={"alerts": list(alerts)}, headers=headers or self.service)

    def ingest(self, *alerts: dict[str, Any]) -> dict[str, Any]:
        response = self.post_alerts(*alerts)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def case(self, case_id: int, headers: Headers | None = None) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/cases/{case_id}", headers=headers or self.analyst)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def soc(client: httpx.Client, app: FastAPI) -> SocApi:
    return SocApi(client, app)


_alert_numbers = itertools.count(1)
BASE_TIME = datetime(2024, 7, 31, 13, 6, 24, tzinfo=UTC)


def build_alert(
    tenant: str,
    *,
    user: str | None = "christophe",
    level: str = "medium",
    group_key: str | None = None,
    minutes: int = 0,
    alert_id: str | None = None,
    rule_title: str = "AWS CloudTrail Important Change",
    entities: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One alert in the correlator's JSON shape; ``minutes`` after a fixed base time."""
    number = next(_alert_numbers)
    alert: dict[str, Any] = {
        "id": alert_id or f"alert-{number:06d}",
        "@timestamp": (BASE_TIME + timedelta(minutes=minutes)).isoformat(),
        "organization": {"id": tenant},
        "rule": {
            "id": "4db60cc0-36fb-42b7-9b58-a5b53019fb74",
            "title": rule_title,
            "level": level,
            "tags": ["attack.t1562.008"],
        },
        "event": {"ids": [f"event-{number}"], "dataset": "aws.cloudtrail"},
        "entities": entities
        if entities is not None
        else ({"user.name": [user]} if user else {}) | {"cloud.account.id": ["143434273843"]},
        **extra,
    }
    if group_key is not None:
        alert["group_key"] = group_key
    return alert


@pytest.fixture
def make_alert() -> Callable[..., dict[str, Any]]:
    """Builder: ``make_alert("northgate-hospital", user="bob", level="high")``."""
    return build_alert
