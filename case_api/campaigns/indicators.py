"""Indicator kinds: which alert entity fields name the same thing across tenants, and how values compare.

A campaign matches an indicator by kind and normalised value, never by raw field and string: the same
domain seen as `dns.question.name` at one member and `url.domain` at another is one indicator, and an
address can never match a domain or a user agent that happens to spell the same. Each alert stores one
``indicator:<kind>`` entity row per normalised value beside its raw entities (the ``rule`` kind is the
alert's ``rule.id`` row), so matching is one indexed equality.

| kind             | alert entity fields                                          | normalised as                   |
|------------------|--------------------------------------------------------------|---------------------------------|
| `ip`             | `source.ip`, `client.ip`                                     | canonical address (`ipaddress`) |
| `user_agent`     | `user_agent.original`                                        | as sent, whitespace trimmed     |
| `domain`         | `source.domain`, `destination.domain`, `url.domain`,         | lower case, no trailing dot;    |
|                  | `dns.question.name`                                          | not an address                  |
| `hash`           | `file.hash.*`, `process.hash.*` (md5, sha1, sha256, sha512)  | lower-case hex of hash length   |
| `user_principal` | `user.email`, `user.name` (only `user@domain` values)        | lower case                      |
| `asn`            | `source.as.number`                                           | the number (`AS64500`: `64500`) |
| `rule`           | the alert's rule id                                          | as is                           |

A value that does not fit its kind (an address in a domain field, `root` as a user principal, `n/a`
as a hash) is no indicator. `destination.ip` is no `ip` indicator: for inbound attacks it is the
member's own address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

#: Entity row field under which an alert's normalised indicators of a kind are stored.
INDICATOR_FIELD_PREFIX = "indicator:"
#: The ``rule`` kind is the alert's rule, stored as the ``rule.id`` entity row (``incidents.models.RULE_FIELD``).
RULE_KIND = "rule"
_HEX = re.compile(r"[0-9a-f]+")
_HASH_LENGTHS = frozenset({32, 40, 64, 128})  # md5, sha1, sha256, sha512
_DOMAIN = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)+")
_ASN = re.compile(r"(?:as)?(\d{1,10})")


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _user_agent(value: str) -> str | None:
    return value.strip() or None


def _domain(value: str) -> str | None:
    name = value.strip().lower().rstrip(".")
    if _ip(name) is not None or not _DOMAIN.fullmatch(name):
        return None
    return name


def _hash(value: str) -> str | None:
    digest = value.strip().lower()
    return digest if len(digest) in _HASH_LENGTHS and _HEX.fullmatch(digest) else None


def _user_principal(value: str) -> str | None:
    name, at, domain = value.strip().lower().rpartition("@")
    return f"{name}@{domain}" if at and name and _domain(domain) else None


def _asn(value: str) -> str | None:
    found = _ASN.fullmatch(value.strip().lower())
    return str(int(found.group(1))) if found else None


@dataclass(frozen=True)
class IndicatorKind:
    name: str
    fields: tuple[str, ...]
    normalise: Callable[[str], str | None]

    @property
    def stored_as(self) -> str:
        """The entity row field holding this kind's normalised values."""
        return "rule.id" if self.name == RULE_KIND else INDICATOR_FIELD_PREFIX + self.name


_HASH_FIELDS = tuple(
    f"{owner}.hash.{algorithm}" for owner in ("file", "process") for algorithm in ("sha256", "sha1", "md5", "sha512")
)
INDICATOR_KINDS: Mapping[str, IndicatorKind] = MappingProxyType({
    kind.name: kind
    for kind in (
        IndicatorKind("ip", ("source.ip", "client.ip"), _ip),
        IndicatorKind("user_agent", ("user_agent.original",), _user_agent),
        IndicatorKind("domain", ("source.domain", "destination.domain", "url.domain", "dns.question.name"), _domain),
        IndicatorKind("hash", _HASH_FIELDS, _hash),
        IndicatorKind("user_principal", ("user.email", "user.name"), _user_principal),
        IndicatorKind("asn", ("source.as.number",), _asn),
        IndicatorKind(RULE_KIND, (), lambda value: value or None),
    )
})


def alert_indicators(entities: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
    """The (stored field, normalised value) indicator rows of an alert's entities (its rule aside)."""
    rows: set[tuple[str, str]] = set()
    for kind in INDICATOR_KINDS.values():
        for name in kind.fields:
            for value in entities.get(name, ()):
                normalised = kind.normalise(value) if value else None
                if normalised is not None:
                    rows.add((kind.stored_as, normalised))
    return rows


def kind_of_stored(field: str) -> str | None:
    """The indicator kind an entity row field holds, or None for a raw entity field."""
    for kind in INDICATOR_KINDS.values():
        if kind.stored_as == field:
            return kind.name
    return None
