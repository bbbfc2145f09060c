"""Reading files in bounded memory: line ends, over-long lines, truncated and corrupt gzip, bombs, JSON shapes."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from collectors.files import DEFAULT_LIMITS, ReadError, ReadLimits, read_lines, split_line_blocks, split_lines
from collectors.ingest import record_batches
from collectors.jsonfiles import NOT_JSON, read_json_records, split_json
from collectors.records import RawRecord, ReadProblem, RecordBlock

NOW = datetime(2026, 1, 2, tzinfo=UTC)
SMALL = ReadLimits(max_record_bytes=64, kept_prefix_bytes=16, chunk_bytes=7)


def lines_of(chunks: list[bytes], limits: ReadLimits = SMALL) -> list[tuple[str, bytes, str | None]]:
    return [(record.origin, record.payload, record.problem.reason if record.problem else None)
            for record in split_lines(iter(chunks), name="f", received=NOW, limits=limits)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_lf_crlf_and_lone_cr_end_lines(ending: bytes) -> None:
    data = ending.join([b"one", b"two", b"", b"four"]) + ending
    assert [(o, p) for o, p, _ in lines_of([data])] == [("f:1", b"one"), ("f:2", b"two"), ("f:3", b""),
                                                       ("f:4", b"four")]


def test_a_crlf_split_between_two_chunks_is_one_line_end() -> None:
    assert [p for _, p, _ in lines_of([b"alpha\r", b"\nbeta\r", b"\ngamma"])] == [b"alpha", b"beta", b"gamma"]


def test_every_chunking_gives_the_same_lines() -> None:
    data = b"a\r\nbb\rccc\n\r\ndddd\r\r\neeeee"
    expected = lines_of([data], ReadLimits(chunk_bytes=1024))
    for size in range(1, len(data) + 1):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert lines_of(chunks, ReadLimits(chunk_bytes=size)) == expected, size


def test_an_over_long_line_is_its_prefix_size_and_digest_and_reading_goes_on() -> None:
    long = b"x" * 200
    records = list(split_lines(iter([b"short\n", long[:90], long[90:] + b"\r\nnext\n"]), name="f", received=NOW,
                               limits=SMALL))
    assert [r.payload for r in records] == [b"short", b"x" * 16, b"next"]
    problem = records[1].problem
    assert problem is not None and problem.size == 200 and problem.sha256 == hashlib.sha256(long).hexdigest()
    assert "200 bytes is over the 64-byte limit" in problem.reason


def test_truncated_gzip_keeps_the_readable_lines_then_one_problem(tmp_path: Path) -> None:
    text = b"".join(b"Dec 10 06:55:%02d host app: line %d\n" % (i % 60, i) for i in range(5000))
    whole = gzip.compress(text)
    path = tmp_path / "auth.log.1.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    records = list(read_lines(path, received=NOW))
    *lines, last = records
    assert len(lines) > 1000 and all(r.problem is None for r in lines)
    assert b"".join(r.payload + b"\n" for r in lines) == text[: sum(len(r.payload) + 1 for r in lines)]
    assert last.problem is not None and "gzip stream truncated" in last.problem.reason
    assert last.origin == f"{path}:{len(lines) + 1}"


def test_corrupt_gzip_is_one_problem_after_the_readable_part(tmp_path: Path) -> None:
    body = bytearray(gzip.compress(b"ok line\n" * 10_000))
    body[len(body) // 2] ^= 0xFF
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(body))
    records = list(read_lines(path, received=NOW))
    assert records[-1].problem is not None and records[-1].problem.reason.startswith("gzip stream")
    assert all(r.payload == b"ok line" for r in records[:-1])


def test_gzip_bomb_stops_at_the_expansion_limit(tmp_path: Path) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    path = tmp_path / "bomb.gz"
    with path.open("wb") as handle:
        block = b"\0" * (1 << 20)
        for _ in range(512):  # 512 MiB of zeros in about half a MiB
            handle.write(compressor.compress(block))
        handle.write(compressor.flush())
    limits = ReadLimits(expansion_floor=8 << 20)
    records = list(read_lines(path, received=NOW, limits=limits))
    assert records[-1].problem is not None and "decompression bomb" in records[-1].problem.reason
    assert len(records) == 1  # one endless line: only its prefix was ever held
    assert len(records[0].payload) == limits.kept_prefix_bytes


@pytest.mark.slow
def test_a_one_gibibyte_line_is_read_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "sparse.log"
    with path.open("wb") as handle:  # sparse: a GiB of NULs on disk costs nothing
        handle.write(b"Dec 10 06:55:46 host app: before\n")
        handle.seek(1 << 30, 1)
        handle.write(b"\nDec 10 06:55:47 host app: after\n")
    records = list(read_lines(path, received=NOW))
    assert [r.payload[-6:] for r in records if r.problem is None] == [b"before", b" after"]
    (long,) = [r for r in records if r.problem is not None]
    expected = hashlib.sha256()
    zeros = b"\0" * (1 << 24)
    for _ in range(64):
        expected.update(zeros)
    assert long.problem is not None
    assert (long.problem.size, long.problem.sha256) == (1 << 30, expected.hexdigest())
    assert len(long.payload) == ReadLimits().kept_prefix_bytes


# --- JSON files ---------------------------------------------------------------------------------------------

def json_records(data: bytes, limits: ReadLimits = DEFAULT_LIMITS) -> list[RawRecord]:
    return list(split_json(iter([data[i:i + 5] for i in range(0, len(data), 5)]), name="t.json", received=NOW,
                           limits=limits))


def test_array_elements_are_cut_whatever_brackets_their_strings_and_nested_arrays_hold() -> None:
    items = [{"a": "}, {", "b": [{"c": 1}, {"d": "]"}]}, {"e": "\\\"}"}, [1, [2]], "a , string", 7, None]
    records = json_records(json.dumps(items, indent=1).encode())
    assert [json.loads(r.payload) for r in records] == items
    assert [r.origin for r in records] == [f"t.json:record[{i}]" for i in range(len(items))]


def test_s3_object_records_are_cut_one_by_one() -> None:
    items = [{"eventID": str(i)} for i in range(3)]
    records = json_records(b'\xef\xbb\xbf  {\n "Records" : ' + orjson.dumps(items) + b"}\n")
    assert [orjson.loads(r.payload) for r in records] == items


def test_ndjson_with_a_broken_first_line_is_still_ndjson() -> None:
    records = json_records(b'{"broken\n{"eventID": "1"}\n\n[1, 2]\n')
    assert [(r.origin, r.payload) for r in records] == [
        ("t.json:1", b'{"broken'), ("t.json:2", b'{"eventID": "1"}'), ("t.json:3", b""), ("t.json:4", b"[1, 2]")]


def test_a_pretty_printed_document_is_one_record_and_prose_is_one_problem() -> None:
    (one,) = json_records(b'{\n  "eventID": "x",\n  "eventName": "y"\n}\n')
    assert (one.origin, orjson.loads(one.payload)) == ("t.json:1", {"eventID": "x", "eventName": "y"})
    (prose,) = json_records(b"# README\nnot json\n")
    assert prose.problem is not None and prose.problem.reason == NOT_JSON and prose.origin == "t.json"


def test_an_over_long_element_is_skipped_and_the_next_ones_are_read() -> None:
    big = {"k": "v" * 5000, "nested": [{"x": "}]"}]}
    data = orjson.dumps([{"a": 1}, big, {"b": 2}])
    records = json_records(data, ReadLimits(max_record_bytes=1000, kept_prefix_bytes=100))
    assert [r.problem is None for r in records] == [True, False, True]
    assert orjson.loads(records[2].payload) == {"b": 2}
    problem = records[1].problem
    assert problem is not None and problem.size == len(orjson.dumps(big))
    assert problem.sha256 == hashlib.sha256(orjson.dumps(big)).hexdigest()


def test_an_element_nested_deeper_than_the_parser_allows_costs_that_element_only() -> None:
    deep = b"[" * 3000 + b"]" * 3000
    records = json_records(b"[" + deep + b', {"ok": true}]')
    assert [r.payload for r in records] == [deep, b'{"ok": true}']


def test_a_truncated_array_keeps_its_whole_elements_then_one_problem() -> None:
    records = json_records(b'[{"a": 1}, {"b": 2}, {"c": "cut')
    assert [r.payload for r in records[:2]] == [b'{"a": 1}', b'{"b": 2}']
    assert records[2].problem is not None and records[2].problem.reason.startswith("not JSON")
    assert len(records) == 3


def test_a_large_gzipped_ndjson_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "trail.ndjson.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for block in range(20):
            handle.write(b"".join(orjson.dumps({"eventID": f"{block}-{i}", "eventName": "y", "pad": "p" * 500})
                                  + b"\n" for i in range(10_000)))
    count = 0
    for record in read_json_records(path, received=NOW):
        assert record.problem is None
        count += 1
    assert count == 200_000


def _stream(chunks: list[bytes], fails: bool) -> Iterator[bytes]:
    yield from chunks
    if fails:
        raise ReadError("gzip stream truncated")


@pytest.mark.parametrize("seed", range(6))
def test_line_blocks_hold_the_records_split_lines_gives(seed: int) -> None:
    # what soc ingest reads: a chunk's whole lines as one record block, an over-long line or the read problem as
    # its one record; flattened, the same records (origins, payloads, problems) as line by line
    rng = random.Random(seed)
    data = b"".join(rng.choice([b"a", b"bb", b"", b"x" * 70, b"<13>Jan  1 00:00:00 h p: m"]) +
                    rng.choice([b"\n", b"\r\n", b"\r"]) for _ in range(300)) + b"tail"
    blocks = 0
    for size in (5, 7, 64, 333, len(data)):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]

        for fails in (False, True):
            expected = list(split_lines(_stream(chunks, fails), name="f", received=NOW, limits=SMALL))
            pieces = list(split_line_blocks(_stream(chunks, fails), name="f", received=NOW, limits=SMALL))
            assert [record for piece in pieces for record in piece] == expected, size
            assert all(isinstance(piece, RecordBlock) or len(piece) == 1 for piece in pieces)
            blocks += sum(isinstance(piece, RecordBlock) for piece in pieces)
    assert blocks


def test_ingest_batches_cut_blocks_at_the_batch_size_and_keep_order() -> None:
    block = RecordBlock.concat([
        RecordBlock.of([b"a%d" % n for n in range(5)], received=NOW, origin_prefix="f:", first=1),
        RecordBlock.of([b"b%d" % n for n in range(4)], received=NOW, origin_prefix="g:", first=10)])
    problem = RawRecord(b"p", "f:99", NOW, ReadProblem("cut"))
    chunks: list[Sequence[RawRecord]] = [block, [problem], block.cut(2, 6)]
    batches = list(record_batches(chunks, size=4))
    assert [len(batch) for batch in batches] == [4, 4, 4, 2]
    assert [record for batch in batches for record in batch] == [*block, problem, *list(block)[2:6]]
    assert isinstance(batches[0], RecordBlock) and isinstance(batches[2], list)
    assert block.cut(3, 7).runs == (block.runs[0]._replace(size=2, first=4), block.runs[1]._replace(size=2))
