"""Deterministic identifiers: the same input always gives the same id, so replays are no-ops."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in the parts we hash by accident of joining


def stable_id(*parts: str) -> str:
    """A 128-bit hex id derived from the ordered parts."""
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


def alert_id(*, tenant: str, rule_id: str, event_ids: Iterable[str]) -> str:
    """Id of an alert raised by a detection rule on a set of events of one tenant (order does not matter).

    The tenant is part of the id: an event id is only unique within a tenant, and two tenants that
    ship the same record must get two alerts.
    """
    return stable_id("alert", tenant, rule_id, *sorted(event_ids))


def window_alert_id(*, tenant: str, rule_id: str, group_key: str, window_start: str) -> str:
    """Id of an alert raised by a correlation rule for one group of one tenant in one window."""
    return stable_id("correlation", tenant, rule_id, group_key, window_start)
