"""Continuous detection's bookkeeping: durations, the checkpoint, and the event-time windows a cycle evaluates.

A cycle selects what is new by arrival: the store's arrival marks after the checkpoint, up to its watermark
(`citysoc.store.EventStore.arrivals`), whatever the events' own times. It then evaluates windows over event
time: each arrival's event-time range widened by the look-back on both sides (a correlation window that
holds a new event may hold older and newer ones), ranges that touch merged (`plan_windows`). An arrival whose
newest event is older than the allowed lateness is not evaluated by the service: it is reported, with the
`soc detect --since --until` that evaluates it, never skipped silently.

The checkpoint is the arrival mark a cycle finished with; it is written atomically only once the cycle's
alerts are delivered, so a restart after a crash at any instant evaluates the unfinished cycle's arrivals
again, and deterministic alert ids make that repeat nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from citysoc.store import Arrival
from citysoc.store.durable import make_dirs_durably, replace_atomically

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_LOOKBACK = timedelta(minutes=5)
DEFAULT_ALLOWED_LATENESS = timedelta(days=7)
_US = timedelta(microseconds=1)


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `1h`, `2d` -> timedelta; anything else (or zero) is a ValueError that says why."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a duration: write a whole number and a unit, e.g. 30s, 5m, 1h or 1d")
    seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds == 0:
        raise ValueError(f"{text!r} is zero: a duration must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def default_lookback(correlation_timespans: list[int]) -> timedelta:
    """The longest correlation timespan (seconds), at least `MIN_LOOKBACK`."""
    return max([MIN_LOOKBACK, *(timedelta(seconds=s) for s in correlation_timespans)])


@dataclass(frozen=True)
class Window:
    """A stretch of event time `[since, until)`, of some tenants (all when empty)."""

    since: datetime
    until: datetime
    tenants: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{iso(self.since)}, {iso(self.until)})"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def moment_of(microseconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + microseconds * _US


@dataclass(frozen=True)
class WindowPlan:
    """What a cycle evaluates (`windows`) and the arrivals it leaves to an explicit run (`late`)."""

    windows: list[Window] = field(default_factory=list)
    late: list[Arrival] = field(default_factory=list)

    @property
    def late_events(self) -> int:
        return sum(arrival.events for arrival in self.late)

    def late_window(self) -> Window | None:
        """The event-time stretch that holds every late arrival (what `soc detect --since --until` covers)."""
        if not self.late:
            return None
        return Window(moment_of(min(a.first_us for a in self.late)), moment_of(max(a.last_us for a in self.late) + 1),
                      tuple(sorted({a.tenant for a in self.late})))


def plan_windows(arrivals: Sequence[Arrival], *, lookback: timedelta, cutoff: datetime,
                 floor: datetime | None = None) -> WindowPlan:
    """The event-time windows that evaluate `arrivals`: each arrival's range widened by `lookback` on both sides,
    overlapping ranges merged (with their tenants). An arrival whose newest event is before `cutoff` (now less
    the allowed lateness) is `late`; one before `floor` is left out altogether."""
    floor_us = None if floor is None else (floor - moment_of(0)) // _US
    cutoff_us = (cutoff - moment_of(0)) // _US
    pad = lookback // _US
    spans: list[tuple[int, int, str]] = []
    late: list[Arrival] = []
    for arrival in arrivals:
        if floor_us is not None and arrival.last_us < floor_us:
            continue
        if arrival.last_us < cutoff_us:
            late.append(arrival)
            continue
        start = arrival.first_us - pad if floor_us is None else max(arrival.first_us - pad, floor_us)
        spans.append((start, arrival.last_us + pad + 1, arrival.tenant))
    windows: list[Window] = []
    current: tuple[int, int, set[str]] | None = None
    for start, end, tenant in sorted(spans):
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end), current[2] | {tenant})
            continue
        if current is not None:
            windows.append(Window(moment_of(current[0]), moment_of(current[1]), tuple(sorted(current[2]))))
        current = (start, end, {tenant})
    if current is not None:
        windows.append(Window(moment_of(current[0]), moment_of(current[1]), tuple(sorted(current[2]))))
    return WindowPlan(windows, late)


def load_checkpoint(path: Path) -> int | None:
    """The arrival mark of the last finished cycle, or None (no checkpoint yet, or one that cannot be read: the
    service then starts from the beginning of the store, and alert ids keep that from repeating anything)."""
    try:
        mark = orjson.loads(path.read_bytes())["arrival"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return mark if isinstance(mark, int) and mark >= 0 else None


def save_checkpoint(path: Path, mark: int) -> None:
    """Atomically and durably record the arrival mark of a finished cycle."""
    make_dirs_durably(path.parent)
    replace_atomically(path, orjson.dumps({"arrival": mark, "at": iso(datetime.now(UTC))}))
