"""Users own API keys: the audit actor is the user's id, keys expire, last use is recorded sparingly,
disabled users are refused, and keys made before users existed migrate to users made from their names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, String, column, event, insert, select, table, update
from sqlalchemy.engine import Connection

from case_api.app import create_app
from case_api.auth.models import ApiKey, Role, User
from case_api.auth.service import hash_secret
from case_api.db import downgrade_database, upgrade_database
from case_api.settings import Settings
from tests.case_api.conftest import http_client

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_admin_adds_users_and_keys_for_them_and_the_actor_is_the_user_not_the_key_name(
    soc: SocApi, make_alert: MakeAlert
) -> None:
    soc.add_tenant(NG)
    for body in ({"id": "ann", "display_name": "Ann Analyst", "role": "soc_analyst"},
                 {"id": "bob", "role": "soc_analyst"}):
        assert soc.client.post("/api/v1/users", json=body, headers=soc.admin).status_code == 201
    again = soc.client.post("/api/v1/users", json={"id": "ann", "role": "admin"}, headers=soc.admin)
    assert again.status_code == 409

    # Bob's key is *named* "ann": the name is a label, it does not make Bob act as Ann.
    created = soc.client.post("/api/v1/keys", json={"name": "ann", "user_id": "bob"}, headers=soc.admin)
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["user_id"], key["role"], key["name"]) == ("bob", "soc_analyst", "ann")
    bob = _bearer(key["secret"])

    case_id = soc.ingest(make_alert(NG))["cases"][0]
    changed = soc.client.patch(f"/api/v1/cases/{case_id}", json={"status": "in_progress", "assignee": "ann"},
                               headers=bob)
    assert changed.status_code == 200, changed.text
    events = soc.case(case_id)["events"]
    assert {e["actor"] for e in events if e["action"] in ("status_changed", "assigned")} == {"bob"}

    # a key for a user takes their role: role and tenant are not the key's to set
    mixed = soc.client.post("/api/v1/keys", json={"name": "x", "user_id": "bob", "role": "admin"}, headers=soc.admin)
    assert mixed.status_code == 422
    # a one-step key for an existing user with another role is refused, not silently re-roled
    clash = soc.client.post("/api/v1/keys", json={"name": "ann", "role": "admin"}, headers=soc.admin)
    assert clash.status_code == 409 and "exists with role 'soc_analyst'" in clash.json()["detail"]
    unknown = soc.client.post("/api/v1/keys", json={"name": "x", "user_id": "nobody"}, headers=soc.admin)
    assert unknown.status_code == 404

    users = {u["id"]: u for u in soc.client.get("/api/v1/users", headers=soc.admin).json()}
    assert users["ann"]["display_name"] == "Ann Analyst" and users["bob"]["last_used_at"] is not None
    assert users["ann"]["last_used_at"] is None
    assert soc.client.get("/api/v1/users", headers=soc.analyst).status_code == 403


def test_tenant_users_need_their_tenant_and_see_only_it(soc: SocApi) -> None:
    soc.add_tenant(NG)
    assert soc.client.post("/api/v1/users", json={"id": "nurse", "role": "tenant_responder"},
                           headers=soc.admin).status_code == 422
    assert soc.client.post("/api/v1/users", json={"id": "nurse", "role": "tenant_responder",
                                                  "tenant_id": "nowhere-school"}, headers=soc.admin).status_code == 422
    assert soc.client.post("/api/v1/users", json={"id": "nurse", "role": "tenant_responder", "tenant_id": NG},
                           headers=soc.admin).status_code == 201
    key = soc.client.post("/api/v1/keys", json={"name": "phone", "user_id": "nurse"}, headers=soc.admin).json()
    assert key["tenant_id"] == NG
    assert [t["id"] for t in soc.client.get("/api/v1/tenants", headers=_bearer(key["secret"])).json()] == [NG]
    for bad in ("a b", "-x", "x" * 101, "ann/../bob"):
        response = soc.client.post("/api/v1/users", json={"id": bad, "role": "soc_analyst"}, headers=soc.admin)
        assert response.status_code == 422, bad


def test_an_expired_key_is_refused_with_the_reason(soc: SocApi, app: FastAPI, clean_db: Engine) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = soc.client.post("/api/v1/keys", json={"name": "t", "role": "soc_analyst", "expires_at": past},
                              headers=soc.admin)
    assert refused.status_code == 422 and "not in the future" in refused.json()["detail"]

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    key = soc.client.post("/api/v1/keys", json={"name": "temp", "role": "soc_analyst", "expires_at": soon},
                          headers=soc.admin).json()
    assert key["expires_at"] is not None
    assert soc.client.get("/api/v1/cases", headers=_bearer(key["secret"])).status_code == 200
    with clean_db.begin() as connection:
        connection.execute(update(ApiKey).where(ApiKey.id == key["id"])
                           .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    # A change written behind the API's back is read within KEY_CACHE_TTL; here at once.
    app.state.key_cache.clear()
    expired = soc.client.get("/api/v1/cases", headers=_bearer(key["secret"]))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_last_use_is_written_once_a_minute_not_once_a_request(soc: SocApi, app: FastAPI, settings: Settings,
                                                              clean_db: Engine) -> None:
    key = soc.client.post("/api/v1/keys", json={"name": "busy", "role": "soc_analyst"}, headers=soc.admin).json()
    headers = _bearer(key["secret"])
    writes = _count_last_use_writes(app.state.engine)
    for _ in range(40):
        assert soc.client.get("/api/v1/tenants", headers=headers).status_code == 200
    assert writes() == 1
    first = _last_used(clean_db, key["id"])
    assert first is not None and datetime.now(UTC) - first < timedelta(minutes=1)

    # Another process (its own throttle) writes only once the stored time is a minute old ...
    other = create_app(settings)
    try:
        other_writes = _count_last_use_writes(other.state.engine)
        with http_client(other) as http:
            assert http.get("/api/v1/tenants", headers=headers).status_code == 200
            assert other_writes() == 0 and _last_used(clean_db, key["id"]) == first
            stale = first - timedelta(minutes=5)
            _set_last_used(clean_db, key["id"], stale)
            for _ in range(20):
                assert http.get("/api/v1/tenants", headers=headers).status_code == 200
            assert other_writes() == 1
            second = _last_used(clean_db, key["id"])
            assert second > first
            # ... and, within one process, once a minute even when the stored time reads stale (as it does
            # to a burst of requests that all read the key before the first one's write)
            _set_last_used(clean_db, key["id"], stale)
            for _ in range(20):
                assert http.get("/api/v1/tenants", headers=headers).status_code == 200
            assert other_writes() == 1
    finally:
        other.state.engine.dispose()
    listed = {k["id"]: k for k in soc.client.get("/api/v1/keys", headers=soc.admin).json()}
    assert listed[key["id"]]["last_used_at"] is not None


def _count_last_use_writes(engine: Engine) -> Callable[[], int]:
    seen: list[str] = []

    def before(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS") and "last_used_at" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return lambda: len(seen)


def _set_last_used(engine: Engine, key_id: int, at: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


def _last_used(engine: Engine, key_id: int) -> datetime:
    with engine.connect() as connection:
        value = connection.execute(select(ApiKey.last_used_at).where(ApiKey.id == key_id)).scalar_one()
    assert value is not None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def test_a_disabled_user_is_refused_everywhere_and_cannot_be_assigned(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    ann = soc.headers(Role.SOC_ANALYST, name="ann")
    case_id = soc.ingest(make_alert(NG))["cases"][0]
    assert soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "ann"}, headers=ann).status_code == 200

    disabled = soc.client.patch("/api/v1/users/ann", json={"disabled": True}, headers=soc.admin)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    refused = soc.client.get("/api/v1/cases", headers=ann)
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    again = soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "ann"}, headers=soc.analyst)
    assert again.status_code == 200  # unchanged: still assigned
    bulk = soc.client.post("/api/v1/cases/bulk", json={"action": "assign", "case_ids": [case_id], "assignee": None},
                           headers=soc.analyst)
    assert bulk.status_code == 200
    reassign = soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "ann"}, headers=soc.analyst)
    assert reassign.status_code == 422 and "unknown assignee" in reassign.json()["detail"]
    no_key = soc.client.post("/api/v1/keys", json={"name": "new", "user_id": "ann"}, headers=soc.admin)
    assert no_key.status_code == 422

    assert soc.client.patch("/api/v1/users/ann", json={"disabled": False}, headers=soc.admin).status_code == 200
    assert soc.client.get("/api/v1/cases", headers=ann).status_code == 200
    admin_id = "test-admin"
    itself = soc.client.patch(f"/api/v1/users/{admin_id}", json={"disabled": True}, headers=soc.admin)
    assert itself.status_code == 422


def test_keys_made_before_users_become_owned_by_users_made_from_their_names(clean_db: Engine) -> None:
    downgrade_database(clean_db, "0010")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    tenants = table("tenants", column("id", String), column("name", String), column("created_at"))
    keys = table("api_keys", column("id"), column("name", String), column("role", String), column("tenant_id", String),
                 column("key_hash", String), column("prefix", String), column("created_at"),
                 column("revoked_at"))
    rows = [
        (1, "bootstrap-admin", "admin", None),
        (2, "analyst-ann", "soc_analyst", None),
        (3, "analyst-ann", "soc_analyst", None),  # a second key of Ann's: same user
        (4, "Ann's laptop", "soc_analyst", None),  # not a valid user id: made into one
        (5, "analyst-ann", "tenant_viewer", NG),  # same name, another role: a user of its own
    ]
    with clean_db.begin() as connection:
        connection.execute(insert(tenants).values(id=NG, name="Northgate", created_at=at))
        connection.execute(insert(keys), [
            {"id": key_id, "name": name, "role": role, "tenant_id": tenant, "key_hash": hash_secret(f"s{key_id}"),
             "prefix": "s", "created_at": at, "revoked_at": None} for key_id, name, role, tenant in rows])
    upgrade_database(clean_db)

    with clean_db.connect() as connection:
        owners = dict(connection.execute(select(ApiKey.id, ApiKey.user_id)).all())
        users = {u.id: (u.role, u.tenant_id) for u in connection.execute(select(User)).all()}
    assert owners == {1: "bootstrap-admin", 2: "analyst-ann", 3: "analyst-ann", 4: "Ann-s-laptop",
                      5: "analyst-ann-5"}
    assert users == {"bootstrap-admin": ("admin", None), "analyst-ann": ("soc_analyst", None),
                     "Ann-s-laptop": ("soc_analyst", None), "analyst-ann-5": ("tenant_viewer", NG)}


@pytest.mark.parametrize("key_id", [2, 5])
def test_migrated_keys_still_authenticate_as_their_user(clean_db: Engine, settings: Settings, key_id: int) -> None:
    test_keys_made_before_users_become_owned_by_users_made_from_their_names(clean_db)
    app = create_app(settings)
    try:
        with http_client(app) as http:
            response = http.get("/api/v1/tenants", headers=_bearer(f"s{key_id}"))
        assert response.status_code == 200
    finally:
        app.state.engine.dispose()
