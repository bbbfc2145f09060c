"""The crash test: a collector appending and draining is killed with SIGKILL at random instants, restarted,
and at the end the store holds every acknowledged record exactly once, and every file of the lake reads."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.ids import stable_id
from citysoc.store import ParquetEventStore
from citysoc.store.journal import STAGING
from tests.collectors.spool_helpers import DATASET
from tests.conftest import REPO
from tests.store.lake_helpers import data_files, stored_ids

RUNS = 12
MAX_BATCH = 30  # records of one append in the worker


def worker(home: Path, run: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.collectors.spool_worker", str(home), run], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def leftovers(home: Path) -> tuple[int, int]:
    """Staged files and journal rows a killed worker left (evidence that a kill landed mid-write)."""
    staging = home / "events" / STAGING
    staged = len(list(staging.iterdir())) if staging.is_dir() else 0
    index = home / "events" / "_ids.sqlite"
    if not index.exists():
        return staged, 0
    conn = sqlite3.connect(index)
    try:
        return staged, int(conn.execute("SELECT count(*) FROM file_journal").fetchone()[0])
    except sqlite3.OperationalError:
        return staged, 0
    finally:
        conn.close()


def acknowledged(home: Path) -> tuple[set[str], set[str]]:
    """Ids of the acknowledged event records, and the raw text of the acknowledged dead ones."""
    events, dead = set(), set()
    for path in (home / "acks").glob("*.acks"):
        for entry in path.read_bytes().decode().splitlines():
            tenant, stamp, text = entry.split(" ", 2)
            if stamp == "garbage":
                dead.add(f"garbage {text}")
            else:
                moment = datetime.fromtimestamp(int(stamp), UTC).isoformat()
                events.add(stable_id(tenant, "test.lines", moment, text, "0"))
    return events, dead


@pytest.mark.slow
def test_kill_9_at_random_instants_loses_and_repeats_no_acknowledged_record(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    mid_write = 0
    for run in range(RUNS):
        process = worker(tmp_path, str(run))
        assert process.stdout is not None and process.stdout.readline().strip() == "ready", process.stderr
        if run == 0:
            # The first kill lands once the lake holds a file: on a loaded machine the first store can come more
            # than 0.8 s after "ready", and a kill before it would leave a lake with nothing to check.
            deadline = time.monotonic() + 60
            while not data_files(tmp_path / "events"):
                assert process.poll() is None and time.monotonic() < deadline, f"seed {seed}: nothing stored in 60 s"
                time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 1.0))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, f"seed {seed}: {process.stderr}"
        staged, journalled = leftovers(tmp_path)
        mid_write += bool(staged or journalled)
        assert stored_ids(tmp_path / "events"), f"seed {seed}"  # every file a reader lists reads, right after the kill

    finish = worker(tmp_path, "finish")
    _, errors = finish.communicate(timeout=120)
    assert finish.returncode == 0, errors

    events, dead = acknowledged(tmp_path)
    ids = stored_ids(tmp_path / "events")
    store = ParquetEventStore(tmp_path / "events")
    assert len(ids) == len(set(ids)), f"seed {seed}: {len(ids) - len(set(ids))} events stored twice"
    assert events <= set(ids), f"seed {seed}: {len(events - set(ids))} acknowledged events lost"
    # what is stored beyond the acknowledged: at most the batch each appending thread had in flight per kill
    assert len(set(ids) - events) <= RUNS * 2 * MAX_BATCH, f"seed {seed}"
    assert store.count(DATASET) == len(ids) == store.stored()
    letters = {letter["raw"] for letter in DeadLetterStore(tmp_path / "deadletter").list(limit=10**7)}
    assert dead <= letters, f"seed {seed}: {len(dead - letters)} acknowledged dead letters lost"
    print(f"seed {seed}: {len(events)} acknowledged events stored once, {len(dead)} dead letters, "
          f"{mid_write} of {RUNS} kills left a write to finish or discard")
