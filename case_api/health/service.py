"""Data health and dead letters for the API: read from the intake's stores, scoped like every tenant datum."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from case_api.health.models import DeadLetterOut, SourceHealthOut
from case_api.sources.models import Source
from citysoc.deadletter import DeadLetterStore
from citysoc.health import HealthStore


def sources_health(*, store: HealthStore, sources: Sequence[Source],
                   now: datetime | None = None) -> dict[int, SourceHealthOut]:
    """Health by source id. The store is asked for each source under its own tenant, so a health line
    recorded for another tenant never shows, whatever id it carries."""
    found = store.health([(source.id, source.tenant_id) for source in sources], now=now)
    return {source_id: SourceHealthOut.model_validate(health, from_attributes=True)
            for source_id, health in found.items()}


def list_dead_letters(*, store: DeadLetterStore, scope: Collection[str] | None, tenant_id: str | None = None,
                      source: str | None = None, limit: int = 100) -> list[DeadLetterOut]:
    """The newest `limit` dead letters the caller may see, newest first.

    A tenant-bound caller gets only its tenants' letters: the store is asked per tenant of the scope, never
    for all of them, and each letter's tenant is checked again. A tenant outside the scope yields nothing,
    the same answer as a tenant without dead letters.
    """
    if scope is None:
        tenants: list[str | None] = [tenant_id] if tenant_id else [None]
    else:
        tenants = [tenant for tenant in sorted(scope) if tenant and tenant_id in (None, tenant)]
    newest: list[dict[str, Any]] = []
    for tenant in tenants:
        # The store lists oldest first with no source filter: keep the newest `limit` that match while streaming.
        kept: deque[dict[str, Any]] = deque(maxlen=limit)
        for letter in store.list(tenant=tenant, limit=max(store.count(tenant=tenant), 1)):
            if scope is not None and letter["tenant"] not in scope:
                continue
            if source is None or letter["source"] == source:
                kept.append(letter)
        newest.extend(kept)
    newest.sort(key=lambda letter: (letter["received"], letter["origin"]), reverse=True)
    return [DeadLetterOut.model_validate(letter) for letter in newest[:limit]]
