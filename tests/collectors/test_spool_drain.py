"""The drainer: spooled records reach the store under their tenant, bad ones the dead letters, the spool is
committed only after the store write, and a replayed pass stores nothing twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore, WriteResult
from collectors.base import register_parser
from collectors.drain import Drainer
from collectors.records import ParsedBatch, RawRecord
from collectors.spool import Spool, SpoolBatch
from tests.collectors.spool_helpers import DATASET, LineTestParser, event_id, line, raw
from tests.store.lake_helpers import stored_ids


@register_parser
class FragileTestParser(LineTestParser):
    """A parser with a bug: it raises on any batch holding `boom` (parsers must not; the drainer copes)."""

    name = "test.fragile"
    aliases = ()

    def parse_records(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> ParsedBatch:
        if any(b"boom" in record.payload for record in records):
            raise RuntimeError("boom")
        return super().parse_records(records, tenant=tenant, source=source)


class Home:
    """A `$SOC_HOME` with a spool, a lake, dead letters and a drainer that records what `on_stored` gets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[tuple[SpoolBatch, ParsedBatch, WriteResult]] = []
        self.store = ParquetEventStore(root / "events")
        self.letters = DeadLetterStore(root / "deadletter")
        self.reopen()

    def reopen(self) -> None:
        """A new spool and drainer over the same directories, as after a restart."""
        if hasattr(self, "spool"):
            self.spool.close()
        self.spool = Spool(self.root / "spool")
        self.drainer = Drainer(self.spool, self.store, self.letters, on_stored=self._stored)

    def _stored(self, batch: SpoolBatch, parsed: ParsedBatch, result: WriteResult) -> None:
        self.seen.append((batch, parsed, result))

    def append(self, payloads: list[bytes], *, tenant: str = "council", source: str = "test.lines") -> None:
        records = [raw(payload, origin=f"tcp 192.0.2.7:5000 #{n}") for n, payload in enumerate(payloads)]
        self.spool.append(tenant=tenant, source=source, records=records)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def test_records_reach_the_store_and_the_dead_letters(home: Home) -> None:
    home.append([line(0, "sshd started"), b"no timestamp here", b"", line(60, "sshd started")])
    home.append([line(5, "north event")], tenant="north-school")
    home.append([line(1, "via an alias")], source="test.lines-alias")
    assert home.drainer.run_once() == 6
    assert sorted(stored_ids(home.store.events_dir)) == sorted([
        event_id("council", 0, "sshd started"), event_id("council", 60, "sshd started"),
        event_id("council", 1, "via an alias"), event_id("north-school", 5, "north event")])
    assert home.store.count(DATASET, tenants=["north-school"]) == 1
    (letter,) = home.letters.list()
    assert (letter["tenant"], letter["origin"], letter["raw"]) == (
        "council", "tcp 192.0.2.7:5000 #1", "no timestamp here")
    assert "not '<epoch seconds> <text>'" in letter["reason"]
    assert list(home.spool.pending()) == [] and home.drainer.run_once() == 0
    # one call per (tenant, source) of the pass, after the commit; an alias is reported under its parser's name
    assert [(batch.tenant, batch.source, len(batch.records), result.stored, len(parsed.dead), parsed.skipped)
            for batch, parsed, result in home.seen] == [
        ("council", "test.lines", 4, 2, 1, 1), ("north-school", "test.lines", 1, 1, 0, 0),
        ("council", "test.lines", 1, 1, 0, 0)]


def test_a_pass_replayed_after_a_crash_before_its_commit_stores_nothing_twice(home: Home) -> None:
    home.append([line(0, "same line"), line(0, "same line")])  # two identical records: both are events
    home.append([line(1, "other")])
    home.drainer.run_once()
    home.append([line(0, "same line")])  # arrives after the pass
    home.spool.close()
    (home.root / "spool" / "checkpoint.json").unlink()  # as a crash between the store write and the commit leaves it
    home.reopen()
    assert len(list(home.spool.pending())) == 3
    assert home.drainer.run_once() == 4
    ids = stored_ids(home.store.events_dir)
    assert len(ids) == len(set(ids)) == home.store.count(DATASET) == 4
    assert set(ids) == {event_id("council", 0, "same line", occurrence=n) for n in range(3)} | {
        event_id("council", 1, "other")}
    assert home.seen[-1][2] == WriteResult(stored=1, duplicates=3)


def test_commit_follows_the_store_write(home: Home) -> None:
    home.append([line(0, "kept until stored")])
    events_dir = home.store.events_dir
    events_dir.parent.mkdir(parents=True, exist_ok=True)
    events_dir.write_bytes(b"")  # the lake cannot be created: every write fails
    with pytest.raises(OSError):
        home.drainer.run_once()
    home.reopen()
    assert len(list(home.spool.pending())) == 1  # not committed
    events_dir.unlink()
    assert home.drainer.run_once() == 1
    assert stored_ids(events_dir) == [event_id("council", 0, "kept until stored")]


def test_a_source_without_parser_or_a_parser_that_raises_costs_only_its_records(home: Home) -> None:
    home.append([line(0, "fine"), line(1, "boom"), line(2, "also fine")], source="test.fragile")
    home.append([line(3, "nobody parses me")], source="no-such-parser")
    home.append([line(4, "after them")])
    assert home.drainer.run_once() == 5
    assert sorted(stored_ids(home.store.events_dir)) == sorted([
        event_id("council", 0, "fine", source="test.fragile"),
        event_id("council", 2, "also fine", source="test.fragile"),
        event_id("council", 4, "after them")])
    reasons = {letter["raw"]: letter["reason"] for letter in home.letters.list()}
    assert reasons.keys() == {line(1, "boom").decode(), line(3, "nobody parses me").decode()}
    assert "parser 'test.fragile' failed on this record: RuntimeError('boom')" in reasons[line(1, "boom").decode()]
    assert "unknown source kind 'no-such-parser'" in reasons[line(3, "nobody parses me").decode()]
    assert list(home.spool.pending()) == []


def test_max_records_bounds_a_pass_by_whole_batches(home: Home) -> None:
    for number in range(5):
        home.append([line(number * 10 + n, "x") for n in range(10)])
    assert home.drainer.run_once(max_records=25) == 30
    assert home.drainer.run_once(max_records=25) == 20
    assert home.store.count(DATASET) == 50


def test_run_drains_as_records_arrive_and_finishes_the_rest_on_stop(home: Home) -> None:
    stop = threading.Event()
    runner = threading.Thread(target=home.drainer.run, args=(stop,), kwargs={"idle_seconds": 0.05})
    runner.start()
    try:
        home.append([line(0, "first")])
        deadline = time.monotonic() + 10
        while home.store.count(DATASET) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert home.store.count(DATASET) == 1
        home.append([line(n, "late") for n in range(1, 200)])
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert home.store.count(DATASET) == 200 and list(home.spool.pending()) == []


def test_run_retries_a_failing_store_without_losing_records(home: Home) -> None:
    events_dir = home.store.events_dir
    events_dir.parent.mkdir(parents=True, exist_ok=True)
    events_dir.write_bytes(b"")
    home.append([line(0, "waits for the store")])
    stop = threading.Event()
    runner = threading.Thread(target=home.drainer.run, args=(stop,), kwargs={"idle_seconds": 0.05})
    runner.start()
    try:
        time.sleep(0.3)  # a few failing passes
        assert len(list(home.spool.pending())) == 1
        events_dir.unlink()
        deadline = time.monotonic() + 10
        while home.spool.pending_bytes() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert stored_ids(events_dir) == [event_id("council", 0, "waits for the store")]


def test_an_idle_drainer_compacts_the_small_files_its_passes_left(home: Home) -> None:
    home.drainer.compact_every = 0.0  # due at every idle moment
    home.drainer.compact_min_files = 4
    for n in range(6):  # six passes of one batch each: six small files in one partition
        home.append([line(n * 10 + k, f"burst {n}") for k in range(10)])
        assert home.drainer.run_once() == 10
    files_before = sum(len(list(folder.glob("*.parquet"))) for folder in home.store.partitions(DATASET))
    ids_before = sorted(stored_ids(home.store.events_dir))
    stop = threading.Event()
    runner = threading.Thread(target=home.drainer.run, args=(stop,), kwargs={"idle_seconds": 0.05})
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(
                len(list(folder.glob("*.parquet"))) for folder in home.store.partitions(DATASET)) >= files_before:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=30)
    files_after = sum(len(list(folder.glob("*.parquet"))) for folder in home.store.partitions(DATASET))
    assert files_before == 6 and files_after == 1
    assert sorted(stored_ids(home.store.events_dir)) == ids_before and home.store.count(DATASET) == 60


def test_a_drainer_without_a_compaction_interval_never_compacts(home: Home) -> None:
    for n in range(6):
        home.append([line(n, "one")])
        home.drainer.run_once()
    assert home.drainer.compact_if_due() == 0
    assert sum(len(list(folder.glob("*.parquet"))) for folder in home.store.partitions(DATASET)) == 6
