"""Deterministic identifiers: the same input always gives the same id, so replays are no-ops."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from operator import methodcaller

import pyarrow as pa
import pyarrow.compute as pc

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in the parts we hash by accident of joining
_HASH = partial(hashlib.blake2b, digest_size=16)
_HEXDIGEST = methodcaller("hexdigest")
# Whether an int64 fingerprint of the first array repeats within it or occurs in one of the others.
RepeatTest = Callable[[pa.Array, list[pa.Array]], bool]


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

    A batch whose ids all occur for the first time (the usual one) is kept as its Arrow arrays
    (`first_occurrences`); the counts are built as Python objects only when some record repeats.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._previous: dict[str, int] = {}
        self._current_once: list[tuple[pa.Array, pa.Array]] = []  # (ids, fingerprints) each seen once
        self._previous_once: list[tuple[pa.Array, pa.Array]] = []

    def count(self, key: str) -> int:
        """1 the first time `key` is seen, 2 the second, ..."""
        self._materialise()
        seen = self._current.get(key)
        if seen is None:
            seen = self._previous.get(key, 0)
        self._current[key] = seen + 1
        return seen + 1

    def next_batch(self) -> None:
        self._previous, self._current = self._current, {}
        self._previous_once, self._current_once = self._current_once, []

    def first_occurrences(self, ids: pa.Array, fingerprints: pa.Array, *,
                          any_repeat: RepeatTest | None = None) -> bool:
        """Counts `ids` (hex digests, with `fingerprints`: their first eight bytes as int64) once each and
        returns True when none repeats within them or with an id counted before; else counts nothing and
        returns False (the caller numbers them one by one). Equal ids have equal fingerprints, so distinct
        fingerprints prove distinct ids; a fingerprint collision only sends the batch the slow way.
        `any_repeat` tests the fingerprints against themselves and the known ones in one pass (compiled:
        `collectors/native/ids.c`); without it, Arrow's `count_distinct` and `is_in` do."""
        known = [prints for _, prints in (*self._current_once, *self._previous_once)]
        if any_repeat is not None:
            if any_repeat(fingerprints, known):
                return False
        elif pc.count_distinct(fingerprints).as_py() != len(fingerprints) or (
                known and pc.any(pc.is_in(fingerprints, value_set=pa.concat_arrays(known))).as_py()):
            return False
        counted = self._current.keys() | self._previous.keys()  # after a batch with repeats: Python objects
        if counted and not counted.isdisjoint(ids.to_pylist()):
            return False
        self._current_once.append((ids, fingerprints))
        return True

    def number(self, ids: list[str]) -> list[str]:
        """First-occurrence ids -> event ids: a repeated one becomes the digest of `<first id><US><occurrence
        number>` (`event_ids`). Changes `ids` in place."""
        self._materialise()
        current, previous = self._current, self._previous
        distinct = dict.fromkeys(ids, 1)
        if len(distinct) == len(ids) and not (distinct.keys() & current.keys()) and not (
                distinct.keys() & previous.keys()):
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

    def _materialise(self) -> None:
        for batches, counts in ((self._current_once, self._current), (self._previous_once, self._previous)):
            for ids, _ in batches:
                counts.update(dict.fromkeys(ids.to_pylist(), 1))  # disjoint from the counted ids
            batches.clear()


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
    them in bulk calls this directly, or `number_occurrences` with digests hashed in bulk). Hashing runs in C
    over the whole batch; only repeated records take a per-record step."""
    return occurrences.number(list(map(_HEXDIGEST, map(_HASH, keys))))


def number_occurrences(ids: pa.Array, fingerprints: pa.Array, occurrences: Occurrences, *,
                       any_repeat: RepeatTest | None = None) -> pa.Array:
    """`event_ids_of_keys` for keys already hashed: `ids` the keys' hex digests (an Arrow string array),
    `fingerprints` their first eight bytes as int64. The usual batch, without repeats, stays in Arrow."""
    if occurrences.first_occurrences(ids, fingerprints, any_repeat=any_repeat):
        return ids
    return pa.array(occurrences.number(ids.to_pylist()), pa.string())


def alert_id(*, tenant: str, rule_id: str, event_ids: Iterable[str]) -> str:
    """Id of an alert raised by a detection rule on a set of events of one tenant (order does not matter).

    The tenant is part of the id: an event id is only unique within a tenant, and two tenants that
    ship the same record must get two alerts.
    """
    return stable_id("alert", tenant, rule_id, *sorted(event_ids))


def window_alert_id(*, tenant: str, rule_id: str, group_key: str, window_start: str) -> str:
    """Id of an alert raised by a correlation rule for one group of one tenant in one window."""
    return stable_id("correlation", tenant, rule_id, group_key, window_start)
