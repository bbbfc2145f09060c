"""`soc users`, `soc keys` and `soc audit` on the embedded default: an administrator adds a user and a key
that expires, the key acts as the user, every change is in the audit log, and `soc audit verify` finds a row
changed behind the API's back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from case_api.app import create_app
from case_api.settings import Settings as CaseSettings
from citysoc.caseclient import CaseClient, CaseClientError
from tests.cli_runner import json_lines, run_soc

NG = "northgate-hospital"


def soc(home: Path, *args: str) -> tuple[int, str, str]:
    return run_soc(home, *args)


def test_an_admin_adds_a_user_and_an_expiring_key_and_every_change_is_audited(tmp_path: Path) -> None:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG)[0] == 0
    code, out, err = soc(home, "users", "add", "nina.nurse", "--role", "tenant_responder", "--tenant", NG,
                         "--name", "Nina")
    assert code == 0, err
    code, _, err = soc(home, "users", "add", "nina.nurse", "--role", "soc_analyst")
    assert code == 1 and "already exists" in err
    code, _, err = soc(home, "users", "add", "bad id", "--role", "soc_analyst")
    assert code == 1 and "422" in err

    code, out, err = soc(home, "keys", "add", "--user", "nina.nurse", "--name", "phone", "--expires", "30d")
    assert code == 0, err
    secret = out.strip()
    assert len(secret) >= 40 and "expires" in err
    code, out, _ = soc(home, "keys", "list", "--user", "nina.nurse", "--json")
    (key,) = json_lines(out)
    expires = datetime.fromisoformat(key["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert secret not in out and key["last_used_at"] is None

    application = create_app(CaseSettings(home=home))
    try:
        with CaseClient.in_process(application, secret) as nina:
            assert [t["id"] for t in nina.list_tenants()] == [NG]
    finally:
        application.state.engine.dispose()
    code, out, _ = soc(home, "users", "list", "--json")
    users = {u["id"]: u for u in json_lines(out)}
    assert users["nina.nurse"]["last_used_at"] is not None and users["nina.nurse"]["tenant_id"] == NG
    assert {"bootstrap-admin", "bootstrap-analyst", "bootstrap-service"} <= set(users)

    assert soc(home, "users", "disable", "nina.nurse")[0] == 0
    assert soc(home, "keys", "revoke", str(key["id"]))[0] == 0
    code, out, _ = soc(home, "users", "list")
    assert code == 0 and "disabled" in out

    code, out, _ = soc(home, "audit", "list", "--actor", "bootstrap-admin", "--json")
    actions = [(e["action"], e["target_id"]) for e in reversed(json_lines(out))]
    assert actions[-5:] == [("tenant.created", NG), ("user.created", "nina.nurse"), ("key.created", str(key["id"])),
                            ("user.disabled", "nina.nurse"), ("key.revoked", str(key["id"]))]
    code, out, _ = soc(home, "audit", "verify")
    assert code == 0 and "audit log intact" in out

    # Someone with the database file rewrites who disabled Nina.
    target = next(e for e in json_lines(soc(home, "audit", "list", "--json")[1]) if e["action"] == "user.disabled")
    with sqlite3.connect(home / "cases.db") as database:
        database.execute("UPDATE audit_log SET actor = 'bootstrap-analyst' WHERE id = ?", (target["id"],))
    code, out, err = soc(home, "audit", "verify")
    assert code == 1 and f"entry id {target['id']}" in err and "changed" in err
    code, out, _ = soc(home, "audit", "verify", "--json")
    assert code == 1 and json_lines(out)[0]["broken_id"] == target["id"]


def test_users_keys_and_the_audit_log_are_for_administrators(tmp_path: Path) -> None:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG)[0] == 0
    secrets = orjson.loads((home / "secrets.json").read_bytes())
    application = create_app(CaseSettings(home=home))
    try:
        with CaseClient.in_process(application, secrets["soc_analyst"]) as analyst:
            for call in (analyst.list_users, analyst.verify_audit, analyst.list_keys):
                with pytest.raises(CaseClientError) as refused:
                    call()
                assert refused.value.status == 403
    finally:
        application.state.engine.dispose()
