"""First-run keys and settings of the embedded default."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select

from case_api.app import create_app
from case_api.auth.models import ApiKey
from case_api.auth.service import hash_secret
from case_api.bootstrap import ensure_bootstrap_keys
from case_api.settings import Settings
from tests.case_api.conftest import http_client


def test_bootstrap_keys_are_stored_privately_and_reused(settings: Settings, clean_db: Engine) -> None:
    secrets = ensure_bootstrap_keys(settings)
    assert set(secrets) == {"admin", "soc_analyst", "service"}
    assert len(set(secrets.values())) == 3
    assert all(len(secret) >= 40 for secret in secrets.values())

    path = settings.home / "secrets.json"
    assert json.loads(path.read_text()) == secrets
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with clean_db.connect() as connection:
        rows = connection.execute(select(ApiKey.name, ApiKey.role, ApiKey.key_hash)).all()
    assert {(r.name, r.role) for r in rows} == {
        ("bootstrap-admin", "admin"),
        ("bootstrap-analyst", "soc_analyst"),
        ("bootstrap-service", "service"),
    }
    assert {r.key_hash for r in rows} == {hash_secret(s) for s in secrets.values()}

    assert ensure_bootstrap_keys(settings) == secrets
    with clean_db.connect() as connection:
        assert len(connection.execute(select(ApiKey.id)).all()) == 3


def test_bootstrap_recreates_keys_after_a_database_reset(settings: Settings, clean_db: Engine) -> None:
    secrets = ensure_bootstrap_keys(settings)
    with clean_db.begin() as connection:
        connection.execute(delete(ApiKey))
    assert ensure_bootstrap_keys(settings) == secrets

    app = create_app(settings)
    try:
        client = http_client(app)
        headers = {"Authorization": f"Bearer {secrets['admin']}"}
        created = client.post("/api/v1/tenants", json={"id": "city-council", "name": "Council"}, headers=headers)
        assert created.status_code == 201
    finally:
        app.state.engine.dispose()


def test_lost_secrets_file_revokes_old_bootstrap_keys(settings: Settings, clean_db: Engine) -> None:
    old = ensure_bootstrap_keys(settings)
    (settings.home / "secrets.json").unlink()
    new = ensure_bootstrap_keys(settings)
    assert set(new.values()).isdisjoint(old.values())
    with clean_db.connect() as connection:
        active = connection.execute(select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None))).all()
    assert {r.key_hash for r in active} == {hash_secret(s) for s in new.values()}


def test_embedded_default_is_sqlite_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SOC_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'cases.db'}"

    secrets = ensure_bootstrap_keys(settings)
    app = create_app(settings)
    try:
        client = http_client(app)
        assert client.get("/api/v1/health").json() == {"status": "ok"}
        listed = client.get("/api/v1/cases", headers={"X-API-Key": secrets["soc_analyst"]})
        assert listed.status_code == 200 and listed.json() == []
    finally:
        app.state.engine.dispose()
    assert (tmp_path / "data" / "cases.db").is_file()


def test_database_url_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_DATABASE_URL", "postgresql+psycopg://soc@db/citysoc")
    assert Settings().effective_database_url == "postgresql+psycopg://soc@db/citysoc"


def test_create_app_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings(home=Path("relative-home")))
    try:
        assert http_client(app).get("/api/v1/health").status_code == 200
    finally:
        app.state.engine.dispose()
    assert (tmp_path / "relative-home" / "cases.db").is_file()
