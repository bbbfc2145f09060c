"""First-run users and API keys for the embedded default, secrets kept in ``{home}/secrets.json`` (mode 600).

Users ``bootstrap-admin``, ``bootstrap-analyst`` and ``bootstrap-service`` each own one key of the same name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import select

from case_api.auth.models import ApiKey, ApiKeyIn, Role, User
from case_api.auth.service import create_api_key, generate_secret, hash_secret, revoke_api_key
from case_api.db import make_engine, make_session_factory, upgrade_database
from case_api.settings import Settings

BOOTSTRAP_ROLES = (Role.ADMIN, Role.SOC_ANALYST, Role.SERVICE)
BOOTSTRAP_KEY_NAMES = {
    Role.ADMIN: "bootstrap-admin",
    Role.SOC_ANALYST: "bootstrap-analyst",
    Role.SERVICE: "bootstrap-service",
}


def ensure_bootstrap_keys(settings: Settings) -> dict[str, str]:
    """The bootstrap secrets by role (``admin``, ``soc_analyst``, ``service``).

    The first call generates them, stores their hashes as API keys and the secrets in
    ``settings.secrets_path``. Later calls read that file and re-create any key the database lost
    (e.g. after it was reset), with the same secret. A key an administrator revoked stays revoked: its
    role gets a new secret, written to the file. If the file is gone, old bootstrap keys are revoked
    and new ones issued, since their secrets cannot be recovered. A bootstrap user an administrator
    disabled gets no key.
    """
    settings.ensure_home()
    stored = _read_secrets(settings.secrets_path)
    secrets = {role.value: stored.get(role.value) or generate_secret() for role in BOOTSTRAP_ROLES}

    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_database(engine)
        with make_session_factory(engine)() as session:
            for role in BOOTSTRAP_ROLES:
                user = session.get(User, BOOTSTRAP_KEY_NAMES[role])
                if user is not None and user.disabled:
                    continue  # an administrator disabled it: no key of it works, and none is made
                secret = secrets[role.value]
                existing = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret))).first()
                if existing is not None and existing.revoked_at is None:
                    continue
                if existing is not None:
                    # An administrator revoked this key: it stays revoked, and the role gets a new secret
                    # (a secret's hash is unique, so the old one can never be issued again).
                    secret = secrets[role.value] = generate_secret()
                # Keys of this user whose secret we no longer hold are dead weight: revoke them.
                for orphan in session.scalars(
                    select(ApiKey).where(ApiKey.user_id == BOOTSTRAP_KEY_NAMES[role], ApiKey.revoked_at.is_(None))
                ).all():
                    revoke_api_key(session=session, key_id=orphan.id, actor=BOOTSTRAP_KEY_NAMES[role])
                # The key (and, the first time, its user: the bootstrap user ids are the key names).
                create_api_key(
                    session=session,
                    key_in=ApiKeyIn(name=BOOTSTRAP_KEY_NAMES[role], role=role),
                    secret=secret,
                )
    finally:
        engine.dispose()

    if secrets != stored:
        _write_secrets(settings.secrets_path, secrets)
    return secrets


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of role -> API key")
    return {str(k): str(v) for k, v in data.items() if v}


def _write_secrets(path: Path, secrets: dict[str, str]) -> None:
    """Write atomically, readable by the owner only from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(secrets, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
