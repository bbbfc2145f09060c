"""The spool: what is appended comes back whole and in order, survives reopening, a torn tail is cut, disk and
memory stay bounded, and concurrent appends share flushes without returning before theirs."""

from __future__ import annotations

import os
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from citysoc.errors import InvalidTenantIdError
from collectors.records import RawRecord, RecordBlock
from collectors.spool import (
    Spool,
    SpoolBatch,
    SpoolCorruptError,
    SpoolFullError,
    SpoolLockedError,
    SpoolPosition,
)
from tests.collectors.spool_helpers import line, raw


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.spool"))


def texts(batches: list[SpoolBatch]) -> list[bytes]:
    return [record.payload for batch in batches for record in batch.records]


def fill(spool: Spool, count: int, *, size: int = 100, tenant: str = "council") -> None:
    for number in range(count):
        spool.append(tenant=tenant, source="test.lines", records=[raw(line(number, f"{number:06d}".ljust(size, "x")))])


def test_batches_come_back_whole_and_in_order(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    first = [
        RawRecord(b"", "empty", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        RawRecord(b"\xff\xfe not UTF-8 \x00", "relp 192.0.2.7 txnr 42", datetime(2026, 3, 2, 11, 0, 0, 7, plus_two)),
        RawRecord(b"x" * 100_000, "auth.log:17 \u00e9 \udcff", datetime(1970, 1, 1, tzinfo=UTC)),
    ]
    second = [raw(line(1, "second batch"))]
    with Spool(tmp_path) as spool:
        spool.append(tenant="council", source="syslog", records=first)
        spool.append(tenant="north-school", source="aws.cloudtrail", records=second)
        spool.append(tenant="council", source="syslog", records=[])  # nothing to do
        batches = list(spool.pending())
        assert [(batch.tenant, batch.source, batch.records) for batch in batches] == [
            ("council", "syslog", tuple(first)), ("north-school", "aws.cloudtrail", tuple(second))]
        assert batches[0].records[1].received == datetime(2026, 3, 2, 9, 0, 0, 7, tzinfo=UTC)
        assert batches[0].position < batches[1].position
        assert list(spool.pending(limit=1)) == batches[:1]
        assert spool.pending_bytes() == batches[1].position.offset


def test_commit_is_kept_across_reopening_and_deletes_drained_segments(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        fill(spool, 30)  # ~200-byte frames: several segments
        assert len(segments(tmp_path)) > 3
        batches = list(spool.pending())
        spool.commit(batches[19].position)
        spool.commit(batches[5].position)  # an earlier position changes nothing
        with pytest.raises(ValueError, match="past the spool's durable end"):
            spool.commit(SpoolPosition(batches[-1].position.offset + 1))
        kept = segments(tmp_path)
        assert all(int(path.stem.removeprefix("segment-")) + 1000 > batches[19].position.offset - 400
                   for path in kept)  # none lies wholly before the commit
    with Spool(tmp_path, segment_bytes=1000) as spool:
        assert texts(list(spool.pending())) == texts(batches[20:])
        spool.commit(batches[-1].position)
        assert list(spool.pending()) == []
        assert len(segments(tmp_path)) == 1  # the active segment stays
        assert spool.pending_bytes() == 0
        fill(spool, 1)
        assert len(list(spool.pending())) == 1


@pytest.mark.parametrize("tail", ["cut", "zeros", "garbage", "bad-length"])
def test_a_torn_tail_is_ignored_and_cut_on_reopening(tmp_path: Path, tail: str) -> None:
    with Spool(tmp_path) as spool:
        fill(spool, 3)
        ends = [batch.position.offset for batch in spool.pending()]
    (segment,) = segments(tmp_path)
    data = segment.read_bytes()
    torn = {
        "cut": data[:ends[1] + (ends[2] - ends[1]) // 2],  # the last frame half written
        "zeros": data[:ends[1]] + bytes(ends[2] - ends[1]),  # power loss: size grew, pages never written
        "garbage": data[:ends[2]] + b"CSP1\x05\x00\x00\x00\x00\x00\x00\x00ab",  # a header promising more
        "bad-length": data[:ends[1]] + data[ends[1]:ends[1] + 4] + b"\x10\x00\x00\x00" + data[ends[1] + 8:ends[2]],
    }[tail]
    segment.write_bytes(torn)
    whole = 3 if tail == "garbage" else 2
    with Spool(tmp_path) as spool:
        assert len(list(spool.pending())) == whole
        assert segment.stat().st_size == ends[whole - 1]  # cut, so the next frame follows a whole one
        spool.append(tenant="council", source="test.lines", records=[raw(b"after the crash")])
        assert texts(list(spool.pending()))[-1] == b"after the crash"
    with Spool(tmp_path) as spool:
        assert len(list(spool.pending())) == whole + 1


def test_damage_before_the_end_is_reported_not_skipped(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        fill(spool, 20)
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[40] ^= 0xFF
    first.write_bytes(bytes(data))
    with Spool(tmp_path, segment_bytes=1000) as spool, pytest.raises(SpoolCorruptError) as caught:
        list(spool.pending())
    assert str(first) in str(caught.value) and "checksum" in str(caught.value)


def test_max_bytes_bounds_the_files_and_refuses_instead_of_growing(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=10_000, segment_bytes=2_000) as spool:
        with pytest.raises(SpoolFullError, match="retry when the drainer has caught up"):
            fill(spool, 1000)
        on_disk = sum(path.stat().st_size for path in segments(tmp_path))
        assert on_disk == spool.disk_bytes() <= 10_000
        assert on_disk > 10_000 - 2 * 200  # refused only when the next frame would not fit
        with pytest.raises(SpoolFullError):
            spool.append(tenant="council", source="test.lines", records=[raw(b"one more")])
        spool.commit(list(spool.pending())[-1].position)
        fill(spool, 10)  # room again once drained
        assert len(list(spool.pending())) == 10
        with pytest.raises(SpoolFullError, match="max_bytes=10,000"):
            spool.append(tenant="council", source="test.lines", records=[raw(b"x" * 20_000)])


def test_a_spool_smaller_than_one_segment_reuses_its_room_once_drained(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=5_000) as spool:  # default segments of 64 MiB
        for _ in range(5):
            fill(spool, 20)
            spool.commit(list(spool.pending())[-1].position)
        assert spool.disk_bytes() <= 5_000 and len(segments(tmp_path)) == 1


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="one collector per spool directory"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()


def test_appends_are_validated(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        with pytest.raises(ValueError, match="timezone-aware"):
            spool.append(tenant="council", source="syslog", records=[RawRecord(b"x", "o", datetime(2026, 3, 2))])
        with pytest.raises(InvalidTenantIdError):
            spool.append(tenant="Council Of", source="syslog", records=[raw(b"x")])
        assert list(spool.pending()) == []


def test_concurrent_appends_share_flushes_and_none_returns_before_its_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushes: list[int] = []  # bytes of the segment that each completed fdatasync covers
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        size = os.fstat(fd).st_size  # what was written when the flush started is what it makes durable
        real_fdatasync(fd)
        flushes.append(size)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    covered_at_return: dict[bytes, int] = {}
    with Spool(tmp_path) as spool:

        def append_many(thread: int) -> None:
            for number in range(40):
                text = f"t{thread}-{number}".encode()
                spool.append(tenant="council", source="test.lines", records=[raw(text)] * 20)
                covered_at_return[text] = max(flushes)

        threads = [threading.Thread(target=append_many, args=(thread,)) for thread in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        batches = list(spool.pending())
    assert len(batches) == 320
    for batch in batches:  # position = the frame's end in the one segment
        assert batch.position.offset <= covered_at_return[batch.records[0].payload]
    assert len(flushes) < 0.75 * len(batches)  # group commit: far fewer flushes than appends


def test_reading_and_reopening_hold_one_frame_at_a_time(tmp_path: Path) -> None:
    batch = [raw(line(number, "y" * 1000)) for number in range(1000)]  # ~1 MB a frame
    with Spool(tmp_path, segment_bytes=1024**3) as spool:
        for _ in range(40):
            spool.append(tenant="council", source="test.lines", records=batch)
    tracemalloc.start()
    try:
        with Spool(tmp_path, segment_bytes=1024**3) as spool:  # scans the 40 MB segment's frames
            opened = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            assert sum(len(batch.records) for batch in spool.pending()) == 40_000
            read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert opened < 4 * 1024**2 and read < 8 * 1024**2


def test_an_unreadable_checkpoint_is_reported_with_what_to_do(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        fill(spool, 3)
        spool.commit(next(spool.pending()).position)
    (tmp_path / "checkpoint.json").write_text("{")
    with pytest.raises(SpoolCorruptError, match="delete it to replay the spool from its oldest segment"):
        Spool(tmp_path)
    (tmp_path / "checkpoint.json").unlink()
    with Spool(tmp_path) as spool:  # the failed open released the directory
        assert len(list(spool.pending())) == 3


def test_a_record_block_comes_back_as_the_records_it_holds(tmp_path: Path) -> None:
    # what a stream listener appends: one run of records per read, written and read back as columns
    first = RecordBlock.of([b"<13>a", b"\xff\xfe not UTF-8 \x00", b"x" * 100_000],
                           received=datetime(2026, 3, 2, 9, 0, 0, 7, tzinfo=UTC), origin_prefix="tcp 192.0.2.7:514 #",
                           first=41)
    second = RecordBlock.of([b"<13>b"], received=datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC),
                            origin_prefix="tls 192.0.2.8:6514 \u00e9 #", first=1)
    joined = RecordBlock.concat([first, second])
    tail = RecordBlock(joined.payloads.slice(2), [joined.runs[0]._replace(size=1, first=43), joined.runs[1]])
    listed = [raw(line(1, "a list between blocks"))]
    with Spool(tmp_path) as spool:
        spool.append(tenant="council", source="syslog", records=first, source_id=3)
        spool.append(tenant="council", source="syslog", records=listed)
        spool.append(tenant="council", source="syslog", records=tail)
    with Spool(tmp_path) as spool:
        batches = list(spool.pending())
    assert [type(batch.records) for batch in batches] == [RecordBlock, tuple, RecordBlock]
    assert list(batches[0].records) == [
        RawRecord(b"<13>a", "tcp 192.0.2.7:514 #41", datetime(2026, 3, 2, 9, 0, 0, 7, tzinfo=UTC)),
        RawRecord(b"\xff\xfe not UTF-8 \x00", "tcp 192.0.2.7:514 #42", datetime(2026, 3, 2, 9, 0, 0, 7, tzinfo=UTC)),
        RawRecord(b"x" * 100_000, "tcp 192.0.2.7:514 #43", datetime(2026, 3, 2, 9, 0, 0, 7, tzinfo=UTC))]
    assert batches[0].source_id == 3 and batches[1].records == tuple(listed)
    assert list(batches[2].records) == [*list(first)[2:], *list(second)]
    assert batches[2].records[-1].origin == "tls 192.0.2.8:6514 \u00e9 #1"
