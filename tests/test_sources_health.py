"""Data health per source (citysoc.health): what the intake records per batch and what a reader is shown."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citysoc.health import RETENTION_MINUTES, WINDOW_MINUTES, HealthStore

NOW = datetime(2026, 3, 2, 10, 30, 45, tzinfo=UTC)
NG = "northgate-hospital"


@pytest.fixture
def store(tmp_path: Path) -> HealthStore:
    return HealthStore(tmp_path / "health")


def test_a_source_never_heard_from_has_empty_health_and_reading_creates_nothing(store: HealthStore) -> None:
    health = store.health([(7, NG)], now=NOW)[7]
    assert health.last_event_received is None and health.last_dead_letter is None
    assert health.events_per_minute == (0,) * WINDOW_MINUTES
    assert health.parse_error_rate is None
    assert not store.path.exists()


def test_per_minute_counts_cover_the_last_hour_oldest_first(store: HealthStore) -> None:
    event_time = NOW - timedelta(hours=3)
    store.record(source_id=1, tenant=NG, events=5, dead=0, last_event_time=event_time, received=NOW)
    store.record(source_id=1, tenant=NG, events=3, dead=1, last_dead_reason="not syslog", last_dead_origin="udp 1",
                 received=NOW - timedelta(seconds=30))  # same minute as NOW: counts add up
    store.record(source_id=1, tenant=NG, events=2, dead=0, received=NOW - timedelta(minutes=59))
    store.record(source_id=1, tenant=NG, events=100, dead=100, received=NOW - timedelta(minutes=60))  # too old

    health = store.health([(1, NG)], now=NOW)[1]
    assert len(health.events_per_minute) == 60
    assert health.events_per_minute[-1] == 8 and health.events_per_minute[0] == 2
    assert sum(health.events_per_minute[1:-1]) == 0
    assert health.events_last_hour == 10 and health.dead_letters_last_hour == 1
    assert health.parse_error_rate == pytest.approx(1 / 11)
    assert health.last_event_received == NOW and health.last_event_time == event_time
    assert health.last_dead_letter is not None
    assert (health.last_dead_letter.reason, health.last_dead_letter.origin) == ("not syslog", "udp 1")


def test_the_newest_event_and_dead_letter_win_whatever_the_order_batches_are_recorded_in(store: HealthStore) -> None:
    store.record(source_id=1, tenant=NG, events=1, dead=1, last_event_time=NOW, last_dead_reason="newer",
                 received=NOW)
    store.record(source_id=1, tenant=NG, events=1, dead=1, last_event_time=NOW - timedelta(days=1),
                 last_dead_reason="older", received=NOW - timedelta(minutes=5))
    store.record(source_id=1, tenant=NG, events=0, dead=0, received=NOW + timedelta(minutes=1))  # an empty batch
    health = store.health([(1, NG)], now=NOW)[1]
    assert health.last_event_received == NOW and health.last_event_time == NOW
    assert health.last_dead_letter is not None and health.last_dead_letter.reason == "newer"


def test_health_is_kept_per_tenant_so_another_tenants_line_never_shows(store: HealthStore) -> None:
    store.record(source_id=3, tenant="riverside-school", events=9, dead=2, last_dead_reason="secret raw", received=NOW)
    mine = store.health([(3, NG)], now=NOW)[3]
    assert mine.events_last_hour == 0 and mine.last_dead_letter is None and mine.last_event_received is None


def test_minutes_older_than_the_retention_are_dropped(store: HealthStore) -> None:
    store.record(source_id=1, tenant=NG, events=1, dead=0, received=NOW - timedelta(minutes=RETENTION_MINUTES + 5))
    store.record(source_id=1, tenant=NG, events=1, dead=0, received=NOW - timedelta(minutes=RETENTION_MINUTES - 5))
    store.record(source_id=1, tenant=NG, events=1, dead=0, received=NOW)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM source_minute").fetchone()[0] == 2


def test_concurrent_writers_lose_no_count(store: HealthStore) -> None:
    def write(worker: int) -> None:
        for _ in range(25):
            store.record(source_id=worker % 2, tenant=NG, events=2, dead=1, last_dead_reason="x", received=NOW)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    health = store.health([(0, NG), (1, NG)], now=NOW)
    assert [health[i].events_last_hour for i in (0, 1)] == [100, 100]
    assert [health[i].dead_letters_last_hour for i in (0, 1)] == [50, 50]


def test_negative_counts_are_refused(store: HealthStore) -> None:
    with pytest.raises(ValueError):
        store.record(source_id=1, tenant=NG, events=-1, dead=0)
