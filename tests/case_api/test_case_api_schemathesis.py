"""Schemathesis against the live OpenAPI document: no operation answers a server error, on SQLite and PostgreSQL.

The schema is what the application serves at ``/api/v1/openapi.json`` (read over ASGI when this module
is collected), so every operation the API publishes is exercised, new ones included; each test then
sends its requests to the application of its database. (Schemathesis' lazy ``from_fixture`` loader,
which would read the document from the test's own app, fails on pytest 9.2: it sets
``Node._nodeid``, which pytest no longer has.) Each generated request is sent with a city key (admin, which
every operation lets in) as drawn, then, if it has path ids, once more aimed at objects that exist,
with the admin's or (every other time) a member's key, so handlers run on real rows, missing ones and
through a member's scope. Schemathesis' coverage phase adds boundary values (ids past 2^31, huge
offsets, over-long strings) to the few random examples. The run stays short: this is a smoke screen
for 500s on every endpoint, not a long fuzzing campaign (run ``st run`` against ``soc api`` for that).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from sqlalchemy import Engine, delete

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.models import metadata
from case_api.settings import Settings
from tests.case_api.conftest import Headers, SocApi, build_alert, http_client

OWN, OTHER = "northgate-hospital", "riverside-school"
#: Examples per operation (and per database): small, so the suite stays fast.
EXAMPLES = 5
#: The collections under ``/api/v1`` whose writes can end a key's validity.
REVOKING = frozenset({"keys", "users", "tenants"})


class FuzzWorld:
    """Two members, a case each with a task, a source each, an extra key: ids the fuzzer can aim at."""

    def __init__(self, soc: SocApi) -> None:
        self.soc = soc
        self.aimed = 0
        for tenant in (OWN, OTHER):
            soc.add_tenant(tenant)
        alerts = (build_alert(t, level="high", entities={"source.ip": ["203.0.113.9"]}) for t in (OWN, OTHER))
        case_id = soc.ingest(*alerts)["cases"][0]
        task = soc.client.post(f"/api/v1/cases/{case_id}/tasks", json={"title": "look"}, headers=soc.admin).json()
        source = soc.client.post(
            "/api/v1/sources", json={"tenant_id": OWN, "kind": "syslog", "name": "auth"}, headers=soc.admin
        ).json()
        spare_key = soc.client.post(
            "/api/v1/keys", json={"name": "spare", "role": "tenant_viewer", "tenant_id": OWN}, headers=soc.admin
        ).json()
        campaigns = soc.client.get("/api/v1/campaigns", headers=soc.admin).json()
        self.ids: dict[str, Any] = {
            "case_id": case_id,
            "task_id": task["id"],
            "source_id": source["id"],
            "key_id": spare_key["id"],
            "campaign_id": campaigns[0]["id"] if campaigns else 1,
            "tenant_id": OWN,
        }
        self._keys: dict[Role, Headers] | None = None

    def keys(self) -> dict[Role, Headers]:
        """An admin's and a member responder's key, issued again after an operation that may have revoked them."""
        if self._keys is None:
            self._keys = {
                Role.ADMIN: self.soc.headers(Role.ADMIN, name="fuzz-admin"),
                Role.TENANT_RESPONDER: self.soc.headers(Role.TENANT_RESPONDER, OWN, name="fuzz-responder"),
            }
        return self._keys

    def used(self, case: Case[Any]) -> None:
        """After `case`: a write to keys, users or tenants may have revoked the keys it was given (a key deleted,
        a user or tenant disabled), so the next request gets new ones."""
        if case.method.upper() != "GET" and case.path.split("/")[3] in REVOKING:
            self._keys = None


@pytest.fixture(scope="module")
def fuzz_app(db_url: str, db_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One application and database per backend for every operation (what one operation leaves, the next meets)."""
    with db_engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))
    app = create_app(Settings(home=tmp_path_factory.mktemp("fuzz-home"), database_url=db_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_world(fuzz_app: FastAPI) -> Iterator[FuzzWorld]:
    with http_client(fuzz_app) as client:
        yield FuzzWorld(SocApi(client, fuzz_app))


def published_schema() -> BaseSchema:
    """The OpenAPI document as the application serves it (on a throw-away SQLite database)."""
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)))
        try:
            return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
        finally:
            app.state.engine.dispose()


schema = published_schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_answers_a_server_error(case: Case[Any], fuzz_app: FastAPI, fuzz_world: FuzzWorld) -> None:
    app = fuzz_app
    keys = fuzz_world.keys()
    admin, member = keys[Role.ADMIN], keys[Role.TENANT_RESPONDER]
    try:
        case.validate_response(case.call(app=app, headers=admin), checks=[not_a_server_error])
        if case.path_parameters:
            aimed = {name: fuzz_world.ids.get(name, value) for name, value in case.path_parameters.items()}
            # Alternate the key so both a city role and a member's scope reach the existing objects.
            fuzz_world.aimed += 1
            headers = member if fuzz_world.aimed % 2 else admin
            case.path_parameters = aimed
            case.validate_response(case.call(app=app, headers=headers), checks=[not_a_server_error])
    finally:
        fuzz_world.used(case)
