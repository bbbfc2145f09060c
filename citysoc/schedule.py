"""`soc detect --every`: the time windows a long-lived detection service runs over.

A 24/7 SOC does not start a JVM, Spark and the rule compiler for every pass: `soc detect --every 5m`
keeps them (and the JIT-compiled rule code) for the life of the process and detects over each new
stretch of time. Anchors: Elastic Security's rule schedule (a run every `interval` over
[now - interval - additional look-back, now)) and Splunk's scheduled searches (earliest/latest).

Each run covers [previous run's end - look-back, now): the look-back re-reads events that arrived
late and correlation windows that straddle two runs. Alert ids are deterministic (`citysoc.ids`), so
what an earlier run saw is not raised or stored twice. The end of the last finished run is kept in
a state file, so a restarted service goes on where it stopped instead of leaving a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_LOOKBACK = timedelta(minutes=5)


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
    since: datetime
    until: datetime

    def __str__(self) -> str:
        return f"[{_iso(self.since)}, {_iso(self.until)})"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def next_window(*, now: datetime, every: timedelta, lookback: timedelta, previous_until: datetime | None,
                since: datetime | None = None) -> Window:
    """The window of the next run, up to `now`.

    From `since` when given (the first run of `--every --since ...`), else from the previous run's end
    minus `lookback`, else (a first start) from `now - every - lookback`. Never after `now`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if since is not None:
        start = since
    elif previous_until is not None:
        start = previous_until - lookback
    else:
        start = now - every - lookback
    return Window(min(start, now), now)


def load_state(path: Path) -> datetime | None:
    """The end of the last finished run, or None (no state yet, or a state file that cannot be read)."""
    try:
        document = orjson.loads(path.read_bytes())
        return datetime.fromisoformat(document["until"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_state(path: Path, until: datetime) -> None:
    """Atomically record the end of a finished run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(orjson.dumps({"until": until.astimezone(UTC).isoformat()}))
    partial.replace(path)
