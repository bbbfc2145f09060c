"""Deterministic identifiers: the same input always gives the same id, so replays are no-ops."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import partial
from operator import methodcaller

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in the parts we hash by accident of joining
_HASH = partial(hashlib.blake2b, digest_size=16)
_HEXDIGEST = methodcaller("hexdigest")


def stable_id(*parts: str) -> str:
    """A 128-bit hex id derived from the ordered parts."""
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


class Occurrences:
    """Counts identical records, so that a record repeated word for word gets a new id each time it recurs.

    Memory stays bounded: the counter remembers the records of the current batch and of the one before,
    and forgets the rest (`next_batch`). Identical records share their timestamp, so in a log they sit
    close together; two copies more than a whole batch apart would be counted as first occurrences again
    (and the second taken for a replay of the first).
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._previous: dict[str, int] = {}

    def count(self, key: str) -> int:
        """1 the first time `key` is seen, 2 the second, ..."""
        seen = self._current.get(key)
        if seen is None:
            seen = self._previous.get(key, 0)
        self._current[key] = seen + 1
        return seen + 1

    def next_batch(self) -> None:
        self._previous, self._current = self._current, {}


def event_ids(*, tenant: str, source: str, timestamps_us: Sequence[int | None], contents: Sequence[bytes],
              occurrences: Occurrences) -> list[str]:
    """Ids of events that carry none of their own (syslog lines, audit records).

    An id covers the tenant, the source, the resolved event time in microseconds since the epoch (so the
    same year-less line placed in 2023 and in 2024 gives two ids), the stored content, and the occurrence
    number of that identical (time, content) within the counting scope of `occurrences`. The first
    occurrence's id is the 128-bit BLAKE2b digest of `event<US>tenant<US>source<US>time<US>content`
    (<US> = 0x1f) in hex; a later one is the digest of `<first id><US><occurrence number>`. Content comes
    last and raw, so no separator inside it can make two different records collide.
    """
    prefix = event_key_prefix(tenant, source)
    keys = [b"%b%d\x1f%b" % (prefix, moment or 0, content)
            for moment, content in zip(timestamps_us, contents, strict=True)]
    return event_ids_of_keys(keys, occurrences)


def event_key_prefix(tenant: str, source: str) -> bytes:
    return _SEPARATOR.join(("event", tenant, source, "")).encode("utf-8")


def event_ids_of_keys(keys: Sequence[bytes], occurrences: Occurrences) -> list[str]:
    """`event_ids` for keys already joined as `event_key_prefix` + `time<US>content` (a parser that builds
    them in bulk calls this directly). Hashing runs in C over the whole batch; only repeated records take
    a per-record step."""
    ids: list[str] = list(map(_HEXDIGEST, map(_HASH, keys)))
    current, previous = occurrences._current, occurrences._previous
    distinct = dict.fromkeys(ids, 1)
    if len(distinct) == len(ids) and not (distinct.keys() & current.keys()) and not (distinct.keys() & previous.keys()):
        current.update(distinct)  # the usual batch: every record is a first occurrence
        return ids
    for position, first in enumerate(ids):
        seen = current.get(first)
        if seen is None:
            seen = previous.get(first, 0)
        current[first] = seen + 1
        if seen:
            ids[position] = _HASH(b"%b\x1f%d" % (first.encode(), seen + 1)).hexdigest()
    return ids


def alert_id(*, tenant: str, rule_id: str, event_ids: Iterable[str]) -> str:
    """Id of an alert raised by a detection rule on a set of events of one tenant (order does not matter).

    The tenant is part of the id: an event id is only unique within a tenant, and two tenants that
    ship the same record must get two alerts.
    """
    return stable_id("alert", tenant, rule_id, *sorted(event_ids))


def window_alert_id(*, tenant: str, rule_id: str, group_key: str, window_start: str) -> str:
    """Id of an alert raised by a correlation rule for one group of one tenant in one window."""
    return stable_id("correlation", tenant, rule_id, group_key, window_start)
