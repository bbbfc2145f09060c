"""A process reads a verified API key from the database once per KEY_CACHE_TTL, not once per request, and
still refuses revoked, expired and disabled keys (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event, update
from sqlalchemy.engine import Connection

from case_api.auth import service
from case_api.auth.models import ApiKey, Principal, Role
from case_api.auth.service import KeyCache, VerifiedKey, authenticate, forget_verified_keys, hash_secret
from case_api.errors import AuthenticationError

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi


def _key_reads(app: FastAPI) -> Callable[[], int]:
    """Key reads on the application's engines: the main one's and the hot reads' (cases/hot.py reads a key there)."""
    seen: list[str] = []

    def before(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM api_keys" in statement:
            seen.append(statement)

    engines: set[Engine] = {app.state.engine, app.state.read_session_factory.kw["bind"]}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    return lambda: len(seen)


def _new_key(soc: SocApi, name: str) -> tuple[dict[str, str], int]:
    made = soc.client.post("/api/v1/keys", json={"name": name, "role": "soc_analyst"}, headers=soc.admin).json()
    return {"Authorization": f"Bearer {made['secret']}"}, made["id"]


def test_a_verified_key_is_read_once_not_once_a_request(soc: SocApi, app: FastAPI) -> None:
    headers, _ = _new_key(soc, "reader")
    reads = _key_reads(app)
    for _ in range(30):
        assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200
    assert reads() == 1


def test_a_key_revoked_or_a_user_disabled_through_the_api_is_refused_at_once(soc: SocApi, app: FastAPI) -> None:
    headers, key_id = _new_key(soc, "leaver")
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200  # cached now
    assert soc.client.delete(f"/api/v1/keys/{key_id}", headers=soc.admin).status_code in (200, 204)
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 401

    headers, _ = _new_key(soc, "mover")
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200
    assert soc.client.patch("/api/v1/users/mover", json={"disabled": True}, headers=soc.admin).status_code == 200
    refused = soc.client.get("/api/v1/cases", headers=headers)
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


def test_a_change_made_by_another_process_is_read_once_the_ttl_has_passed(soc: SocApi, app: FastAPI,
                                                                         clean_db: Engine) -> None:
    headers, key_id = _new_key(soc, "elsewhere")
    app.state.key_cache = KeyCache(ttl=60)
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200
    with clean_db.begin() as connection:  # as `soc keys revoke` in another process would
        connection.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=datetime.now(UTC)))
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 200  # within the ttl: trusted
    app.state.key_cache = KeyCache(ttl=0)  # the ttl has passed
    assert soc.client.get("/api/v1/cases", headers=headers).status_code == 401


def test_a_cached_key_past_its_expiry_is_refused_without_reading_the_database(soc: SocApi, app: FastAPI) -> None:
    headers, key_id = _new_key(soc, "short")
    secret = headers["Authorization"].removeprefix("Bearer ")
    cache = KeyCache()
    principal = Principal(user_id="short", role=Role.SOC_ANALYST, tenant_id=None, key_id=key_id)
    expired_at = datetime.now(UTC) - timedelta(seconds=1)
    cache.put(hash_secret(secret), VerifiedKey(principal=principal, prefix=secret[:8], expires_at=expired_at,
                                               verified=time.monotonic()), service._generation)
    reads = _key_reads(app)
    with app.state.session_factory() as session, pytest.raises(AuthenticationError, match="expired"):
        authenticate(session=session, secret=secret, cache=cache)
    assert reads() == 0


def test_a_verification_that_overlaps_a_revocation_is_not_cached() -> None:
    cache = KeyCache()
    principal = Principal(user_id="x", role=Role.SOC_ANALYST, tenant_id=None, key_id=1)
    started = service._generation  # the database was read ...
    forget_verified_keys()  # ... a revocation committed meanwhile ...
    cache.put("h", VerifiedKey(principal=principal, prefix="x", expires_at=None, verified=0.0), started)
    assert cache.get("h") is None  # ... so what was read is not kept
