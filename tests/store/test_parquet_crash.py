"""A store write or compaction killed (SIGKILL, in a separate process) at each instant of its commit protocol:
readers never trip, the next writer finishes or discards what was left, and writing the batch again stores
every event exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citysoc.schema import spark_schema
from citysoc.store import ParquetEventStore
from citysoc.store.journal import STAGING
from tests.conftest import REPO
from tests.store.crash_child import SMALL_FILES, SMALL_ROWS, WRITE_DAYS, WRITE_ROWS
from tests.store.lake_helpers import DATASET, data_files, events, stored_ids


def crash(events_dir: Path, instant: str) -> None:
    child = subprocess.run([sys.executable, "-m", "tests.store.crash_child", str(events_dir), instant],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr


def staged(events_dir: Path) -> list[Path]:
    return sorted((events_dir / STAGING).iterdir()) if (events_dir / STAGING).is_dir() else []


@pytest.mark.parametrize(("instant", "visible_before_recovery"), [
    ("staged", 0),  # written, not committed: not stored
    ("committed", 0),  # committed, not yet renamed: stored, visible once recovered
    ("renamed-one", WRITE_ROWS // WRITE_DAYS),  # one day file in place
    ("swapped", WRITE_ROWS),  # all in place, journal not cleared
])
def test_a_write_killed_at_any_instant_stores_each_event_once(tmp_path: Path, instant: str,
                                                               visible_before_recovery: int) -> None:
    events_dir = tmp_path / "events"
    crash(events_dir, instant)
    # what a reader finds right after the crash: whole files only, and never a partial day
    assert len(stored_ids(events_dir)) == visible_before_recovery
    assert all(path.name.startswith("part-") for path in data_files(events_dir))

    store = ParquetEventStore(events_dir)
    store.recover()
    assert staged(events_dir) == []
    committed = 0 if instant == "staged" else WRITE_ROWS
    assert store.stored() == committed == len(stored_ids(events_dir)) == store.count(DATASET)

    result = store.write_table(tenant="council", dataset=DATASET, table=events(WRITE_ROWS, days=WRITE_DAYS))
    assert (result.stored, result.duplicates) == (WRITE_ROWS - committed, committed)
    ids = stored_ids(events_dir)
    assert len(ids) == len(set(ids)) == WRITE_ROWS == store.count(DATASET) == store.stored()
    assert set(ids) == {f"e{number}" for number in range(WRITE_ROWS)}


@pytest.mark.parametrize("instant", ["compact-staged", "compact-renamed", "compact-unlinked-one"])
def test_a_compaction_killed_at_any_instant_leaves_the_old_files_or_the_merged_one(tmp_path: Path,
                                                                                   instant: str) -> None:
    events_dir = tmp_path / "events"
    crash(events_dir, instant)
    expected = {f"e{number}" for number in range(SMALL_FILES * SMALL_ROWS)}
    before = stored_ids(events_dir)
    assert set(before) == expected  # possibly twice (old and merged files side by side), never missing

    store = ParquetEventStore(events_dir)
    store.recover()
    ids = stored_ids(events_dir)
    assert len(ids) == len(set(ids)) == len(expected) == store.count(DATASET)
    assert set(ids) == expected
    assert staged(events_dir) == []
    files = len(data_files(events_dir))
    assert files == (SMALL_FILES if instant == "compact-staged" else 1)
    assert store.compact(min_files=4) == (SMALL_FILES if files > 1 else 0)
    assert sorted(stored_ids(events_dir)) == sorted(ids)


def test_spark_reads_a_lake_left_by_a_killed_write(spark: Any, tmp_path: Path) -> None:
    events_dir = tmp_path / "events"
    ParquetEventStore(events_dir).write_table(tenant="council", dataset=DATASET, table=events(10, prefix="x"))
    crash(events_dir, "committed")  # a journalled, staged, hidden file remains
    assert staged(events_dir)
    frame = ParquetEventStore(events_dir).read(spark, DATASET)
    assert frame is not None and frame.count() == 10
    assert spark.read.schema(spark_schema()).parquet(str(events_dir)).count() == 10  # the whole lake, listed by Spark
    ParquetEventStore(events_dir).recover()
    frame = ParquetEventStore(events_dir).read(spark, DATASET)
    assert frame is not None and frame.count() == 10 + WRITE_ROWS
