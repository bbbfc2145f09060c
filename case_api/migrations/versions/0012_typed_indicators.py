"""Campaigns match typed indicators: existing campaigns name their indicator's kind instead of a field,
and existing alerts get their ``indicator:<kind>`` entity rows (normalised values), so alerts placed
after the upgrade link with sightings from before it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000
_entities = sa.table(
    "alert_entities",
    sa.column("id", sa.Integer), sa.column("alert_id", sa.String), sa.column("tenant_id", sa.String),
    sa.column("field", sa.String), sa.column("value", sa.String), sa.column("grouping", sa.Boolean),
    sa.column("risk", sa.Integer), sa.column("timestamp", sa.DateTime(timezone=True)),
    sa.column("last_seen", sa.DateTime(timezone=True)),
)
_campaigns = sa.table("campaigns", sa.column("indicator_field", sa.String))


# The kinds as this revision knows them (a copy of `case_api/campaigns/indicators.py` at the time, so the
# migration does the same thing whatever the application's table becomes later).
_HEX = re.compile(r"[0-9a-f]+")
_DOMAIN = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)+")
_ASN = re.compile(r"(?:as)?(\d{1,10})")


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _domain(value: str) -> str | None:
    name = value.strip().lower().rstrip(".")
    return None if _ip(name) is not None or not _DOMAIN.fullmatch(name) else name


def _hash(value: str) -> str | None:
    digest = value.strip().lower()
    return digest if len(digest) in (32, 40, 64, 128) and _HEX.fullmatch(digest) else None


def _user_principal(value: str) -> str | None:
    name, at, domain = value.strip().lower().rpartition("@")
    return f"{name}@{domain}" if at and name and _domain(domain) else None


def _asn(value: str) -> str | None:
    found = _ASN.fullmatch(value.strip().lower())
    return str(int(found.group(1))) if found else None


_HASH_FIELDS = tuple(f"{owner}.hash.{algorithm}" for owner in ("file", "process")
                     for algorithm in ("sha256", "sha1", "md5", "sha512"))
_KINDS: dict[str, tuple[tuple[str, ...], Callable[[str], str | None]]] = {
    "ip": (("source.ip", "client.ip"), _ip),
    "user_agent": (("user_agent.original",), lambda value: value.strip() or None),
    "domain": (("source.domain", "destination.domain", "url.domain", "dns.question.name"), _domain),
    "hash": (_HASH_FIELDS, _hash),
    "user_principal": (("user.email", "user.name"), _user_principal),
    "asn": (("source.as.number",), _asn),
}
_RULE_KIND = "rule"


def _field_kinds() -> dict[str, str]:
    kinds = {name: kind for kind, (fields, _) in _KINDS.items() for name in fields}
    return kinds | {"rule.id": _RULE_KIND}


def _indicator_rows(field: str, value: str) -> list[tuple[str, str]]:
    """The (``indicator:<kind>``, normalised value) rows one raw entity gives."""
    rows = []
    for kind, (fields, normalise) in _KINDS.items():
        normalised = normalise(value) if field in fields and value else None
        if normalised is not None:
            rows.append((f"indicator:{kind}", normalised))
    return rows


def upgrade() -> None:
    connection = op.get_bind()
    for field, kind in _field_kinds().items():
        connection.execute(
            _campaigns.update().where(_campaigns.c.indicator_field == field).values(indicator_field=kind)
        )
    fields = sorted(name for names, _ in _KINDS.values() for name in names)
    last = 0
    while True:
        rows = connection.execute(
            sa.select(_entities.c.id, _entities.c.alert_id, _entities.c.tenant_id, _entities.c.field,
                      _entities.c.value, _entities.c.timestamp, _entities.c.last_seen)
            .where(_entities.c.id > last, _entities.c.field.in_(fields))
            .order_by(_entities.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        added = {
            (row.tenant_id, row.alert_id, stored, value): row
            for row in rows
            for stored, value in _indicator_rows(row.field, row.value)
        }
        present = _present(connection, {(tenant, alert) for tenant, alert, _, _ in added})
        new = [
            {"alert_id": alert, "tenant_id": tenant, "field": stored, "value": value, "grouping": False, "risk": 0,
             "timestamp": row.timestamp, "last_seen": row.last_seen}
            for (tenant, alert, stored, value), row in added.items()
            if (tenant, alert, stored, value) not in present
        ]
        if new:
            connection.execute(sa.insert(_entities), new)


def _present(connection: sa.Connection, alerts: set[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
    """Indicator rows the alerts have already (one alert's entities may span two batches)."""
    if not alerts:
        return set()
    rows = connection.execute(
        sa.select(_entities.c.tenant_id, _entities.c.alert_id, _entities.c.field, _entities.c.value).where(
            _entities.c.alert_id.in_(sorted({alert for _, alert in alerts})), _entities.c.field.like("indicator:%")
        )
    ).all()
    return {(row.tenant_id, row.alert_id, row.field, row.value) for row in rows}


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(_entities.delete().where(_entities.c.field.like("indicator:%")))
    first_field = {kind: fields[0] for kind, (fields, _) in _KINDS.items()}
    for kind, field in (first_field | {_RULE_KIND: "rule.id"}).items():
        connection.execute(
            _campaigns.update().where(_campaigns.c.indicator_field == kind).values(indicator_field=field)
        )
