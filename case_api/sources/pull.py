"""A pulled source's settings: checked against its kind (`kinds.PULL_KINDS`) when it is registered.

A pull files a provider account's records under a tenant, with credentials the puller reads from its own
environment or files: so, like sender networks and cloud accounts, pulled sources are the city SOC's to
register (a member's key could otherwise name another member's credential reference, or a file on the
puller's machine). Credentials are references only (`env:NAME`, `file:/path`); a value that is not one is
refused without being repeated, so a secret pasted by mistake goes into no answer, log or audit line.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from case_api.auth.models import Principal
from case_api.errors import InvalidRequestError, PermissionDeniedError
from case_api.sources.kinds import PULL_KINDS, SourceKind

#: an http source's settings: the Pub/Sub push subscription's service account (the ID token's `email`) and
#: audience (its `aud`; the push endpoint URL when the subscription sets none)
PUSH_SETTINGS = ("push_service_account", "push_audience")


def is_reference(value: str) -> bool:
    scheme, _, name = value.partition(":")
    return scheme in ("env", "file") and bool(name.strip()) and (scheme != "file" or name.startswith("/"))


def check_pull_settings(kind: SourceKind, settings: dict[str, Any], actor: Principal) -> dict[str, Any]:
    """The settings to keep for a source of `kind`; `InvalidRequestError` / `PermissionDeniedError` with advice."""
    if kind.name == "http" and settings:
        return _push_settings(settings, actor)
    if not kind.pulled:
        if settings:
            raise InvalidRequestError(f"a {kind.name} source is not pulled: it takes no pull settings")
        return {}
    if actor.role.is_tenant_bound:
        raise PermissionDeniedError(f"a {kind.name} source pulls with credentials the city SOC keeps: ask it to add "
                                    "the source (and to hold the credential where its puller reads it)")
    spec = PULL_KINDS[kind.name]
    known = spec.required + spec.optional
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise InvalidRequestError(f"a {kind.name} source takes no setting {', '.join(unknown)}; its settings are: "
                                  f"{', '.join(known)}")
    missing = [name for name in spec.required if not settings.get(name)]
    if missing:
        raise InvalidRequestError(f"a {kind.name} source needs {', '.join(missing)} (settings: {', '.join(known)})")
    kept: dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, list) and name not in spec.lists:
            raise InvalidRequestError(f"{name} is one value, not a list")
        if name in spec.lists and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if name in spec.secrets and not (isinstance(value, str) and is_reference(value)):
            raise InvalidRequestError(f"{name} is a credential: give where the puller finds it, env:NAME (an "
                                      "environment variable of `soc pull`) or file:/absolute/path, not the secret "
                                      "itself (the value given is not repeated here)")
        if name in spec.endpoints or (kind.name == "okta" and name == "domain"):
            _check_url(name, value, https=name == "domain")
        kept[name] = value
    return kept


def _push_settings(settings: dict[str, Any], actor: Principal) -> dict[str, Any]:
    """An http source's push identity: the service account a Pub/Sub push subscription signs its ID tokens as
    and the audience it signs for. Whoever holds it files pushes under the tenant, so, like networks, the city
    SOC registers it."""
    unknown = sorted(set(settings) - set(PUSH_SETTINGS))
    if unknown:
        raise InvalidRequestError(f"an http source takes no setting {', '.join(unknown)}; its settings are the "
                                  f"Pub/Sub push identity: {', '.join(PUSH_SETTINGS)}")
    if actor.role.is_tenant_bound:
        raise PermissionDeniedError("a push identity files whatever it signs under the tenant: ask the city SOC to "
                                    "add it to the source")
    missing = [name for name in PUSH_SETTINGS if not isinstance(settings.get(name), str) or not settings[name]]
    if missing:
        raise InvalidRequestError(f"a push identity needs both {' and '.join(PUSH_SETTINGS)} (missing: "
                                  f"{', '.join(missing)})")
    if "@" not in settings["push_service_account"]:
        raise InvalidRequestError("push_service_account is the service account's email, e.g. "
                                  "citysoc-push@project.iam.gserviceaccount.com")
    return {name: settings[name] for name in PUSH_SETTINGS}


def _check_url(name: str, value: Any, *, https: bool) -> None:
    parts = urlsplit(value if "://" in str(value) else f"https://{value}")
    if parts.scheme not in ("https", "http") or not parts.hostname or (https and parts.scheme != "https"):
        raise InvalidRequestError(f"{name} must be an {'https' if https else 'http(s)'} URL, e.g. "
                                  f"{'https://acme.okta.com' if https else 'https://s3.example.org'}")
