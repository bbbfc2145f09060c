"""The compiled fast paths (`collectors/native/`) against their pure twins on the same input.

Each compiled module must give exactly what the pure path gives: the event ids equal `hashlib`'s BLAKE2b
digests (random keys, an empty batch, sliced and large_binary arrays); the syslog header parser gives the
same `Headers` (every part, nulls included, and the same rows of each form) as the regular expressions on
every string literal of the collector tests, loghub's samples, bench.ingest's stream, arbitrary text and
header-like lines from Hypothesis; a whole parse and a whole ingest run store the same tables and dead
letters with `SOC_NATIVE=0` as with the compiled path. Under `CI=true` a module that
was not built fails the run (CI proves the compiled path); elsewhere its tests skip with the reason.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citysoc.deadletter import DeadLetterStore
from citysoc.ids import Occurrences, event_ids_of_keys, event_key_prefix, number_occurrences
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors import ParserOptions, RawRecord, SyslogParser, native
from collectors.base import _any_repeat, _compiled_keys, hex_digests
from collectors.columns import TIMESTAMP
from collectors.ingest import ingest_files
from collectors.redact import redact_text_column
from collectors.syslog import decode
from collectors.syslog_header import FACILITY_NAMES, LEVEL_CODES, Headers, split_headers, split_headers_with_regexes
from tests.collectors.test_collectors_fuzz import SYSLOG_SEEDS, mutated
from tests.conftest import require

MODULES = ("ids", "syslog_header", "auth", "redact")
TESTS = Path(__file__).resolve().parent
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def compiled(name: str) -> ModuleType:
    module = native.load(name)
    if module is None and not native.enabled():
        pytest.skip(f"collectors._{name} disabled by SOC_NATIVE=0")
    if module is None:
        require(f"the compiled module collectors._{name}", f"collectors._{name} not built (`pip install -e .` or "
                "`python setup.py build_ext --inplace` builds it; needs a C compiler and the Python headers)")
    assert module is not None
    return module


@pytest.mark.parametrize("name", MODULES)
def test_every_compiled_module_is_built(name: str) -> None:
    assert compiled(name).__name__ == f"collectors._{name}"


def test_soc_native_0_turns_the_compiled_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled("ids")
    monkeypatch.setenv("SOC_NATIVE", "0")
    assert native.load("ids") is None
    assert hex_digests(pa.array([b"x"])) is None


def _expected(keys: list[bytes]) -> list[str]:
    return [hashlib.blake2b(key, digest_size=16).hexdigest() for key in keys]


def _digests(keys: pa.Array) -> tuple[list[str], list[int]]:
    found = hex_digests(keys)
    assert found is not None
    ids, fingerprints = found
    assert ids.type == pa.string() and fingerprints.type == pa.int64()
    ids.validate(full=True)
    return ids.to_pylist(), fingerprints.to_pylist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=1000), max_size=40), st.booleans())
def test_digests_equal_hashlib(keys: list[bytes], large: bool) -> None:
    compiled("ids")
    ids, fingerprints = _digests(pa.array(keys, pa.large_binary() if large else pa.binary()))
    assert ids == _expected(keys)
    assert fingerprints == [int.from_bytes(bytes.fromhex(hex_id[:16]), "little", signed=True) for hex_id in ids]


def test_digests_at_block_edges_and_of_an_empty_batch() -> None:
    compiled("ids")
    keys = [bytes(range(256))[:n] * 1 for n in (0, 1, 127, 128, 129, 255, 256)] + [b"\xff" * 257, b"a" * 100_000]
    assert _digests(pa.array(keys))[0] == _expected(keys)
    assert _digests(pa.array([], pa.binary())) == ([], [])
    assert _digests(pa.array([b"a", b"b"]).slice(2)) == ([], [])


def test_digests_of_sliced_and_chunked_arrays() -> None:
    compiled("ids")
    keys = [os.urandom(size) for size in range(0, 600, 7)]
    for kind in (pa.binary(), pa.large_binary()):
        array = pa.array(keys, kind)
        assert _digests(array.slice(5, 40))[0] == _expected(keys[5:45])
        assert _digests(array.slice(len(keys) - 1))[0] == _expected(keys[-1:])
        assert _digests(pa.chunked_array([array.slice(0, 3), array.slice(10, 4)]))[0] == _expected(
            keys[:3] + keys[10:14])


def test_digests_refuse_offsets_outside_the_data() -> None:
    module = compiled("ids")
    offsets = pa.array([0, 4, 99], pa.int32()).buffers()[1]
    with pytest.raises(ValueError, match="outside the data buffer"):
        module.blake2b128_hex(offsets, b"abcd", 0, 2, False)
    with pytest.raises(ValueError, match="offsets buffer is shorter"):
        module.blake2b128_hex(offsets, b"abcd", 1, 2, False)


def test_occurrence_numbers_equal_the_pure_path_across_batches() -> None:
    """Repeats within a batch, across two batches, and three batches apart (forgotten), numbered the same."""
    compiled("ids")
    batches = [[b"a", b"b", b"c"], [b"d", b"a", b"e"], [b"f", b"g"], [b"h", b"h", b"a", b"h"], [b"i"], [b"a", b"j"],
               [b"k", b"k"], [b"k", b"l"], [b"m"], [b"l"]]
    pure, arrow, compiled_test = Occurrences(), Occurrences(), Occurrences()
    for keys in batches:
        expected = event_ids_of_keys(keys, pure)
        found = hex_digests(pa.array(keys))
        assert found is not None
        assert number_occurrences(*found, arrow).to_pylist() == expected
        assert number_occurrences(*found, compiled_test, any_repeat=_any_repeat).to_pylist() == expected
        for counter in (pure, arrow, compiled_test):
            counter.next_batch()
    last = hashlib.blake2b(b"l", digest_size=16).hexdigest()  # in the batch before: counted a second time
    assert arrow.count(last) == pure.count(last) == compiled_test.count(last) == 2


_INT64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_INT64, st.sampled_from([0, 1, -1, 2**40])), max_size=60),
       st.lists(st.lists(st.one_of(_INT64, st.sampled_from([0, 1, -1, 2**40])), max_size=30), max_size=3),
       st.integers(0, 3))
def test_the_compiled_repeat_test_equals_arrows(current: list[int], known: list[list[int]], cut: int) -> None:
    """`count_distinct` and `is_in` against `collectors._ids.any_repeat`, sliced arrays included."""
    compiled("ids")
    prints = pa.array([0] * cut + current, pa.int64()).slice(cut)
    others = [pa.array(values, pa.int64()) for values in known]
    expected = pc.count_distinct(prints).as_py() != len(prints) or bool(
        others and pc.any(pc.is_in(prints, value_set=pa.concat_arrays(others))).as_py())
    assert _any_repeat(prints, others) is expected


def _ingested(root: Path, paths: list[Path]) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[Any, Any]]]:
    """Stored rows per partition (ordered by event id, the arrival time left out) and dead letters."""
    store, letters = ParquetEventStore(root / "events"), DeadLetterStore(root / "deadletter")
    for path in paths:
        ingest_files(tenant="council", source="syslog", paths=[path], store=store, dead_letters=letters, year=2024,
                     batch_size=700)
    stored: dict[str, list[dict[str, Any]]] = {}
    for part in sorted(store.events_dir.rglob("*.parquet")):
        rows = stored.setdefault(part.relative_to(store.events_dir).parent.as_posix(), [])
        rows.extend({**row, "event": {**row["event"], "ingested": None}}
                    for row in pq.read_table(part, schema=ARROW_SCHEMA).to_pylist())
    for rows in stored.values():
        rows.sort(key=lambda row: row["event"]["id"])
    dead = sorted((letter["reason"], letter["raw"]) for letter in letters.list(tenant="council", limit=100_000))
    return stored, dead


def test_ingest_stores_the_same_with_and_without_the_compiled_path(corpora: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    compiled("ids")
    repeated = tmp_path / "repeated.log"
    line = "Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]"
    repeated.write_text(f"{line}\n{line}\nnot syslog\n{line}\n" * 400)
    paths = [corpora / "loghub" / "OpenSSH_2k.log", corpora / "loghub" / "Apache_2k.log", repeated]
    compiled_stored, compiled_dead = _ingested(tmp_path / "native", paths)
    monkeypatch.setenv("SOC_NATIVE", "0")
    pure_stored, pure_dead = _ingested(tmp_path / "pure", paths)
    assert compiled_stored == pure_stored
    assert compiled_dead == pure_dead
    assert sum(map(len, compiled_stored.values())) == 2000 + 1200 and len(compiled_dead) == 2000 + 400


def _lines(payloads: list[bytes]) -> pa.Array:
    """What the syslog parser hands `split_headers`: decoded (U+FFFD for invalid UTF-8), trimmed, redacted."""
    return redact_text_column(decode([RawRecord(payload, "test", NOW) for payload in payloads]))


def _same_headers(lines: pa.Array) -> None:
    found = split_headers(lines)
    expected = split_headers_with_regexes(lines)
    assert isinstance(found, Headers)
    assert found.rfc5424.to_pylist() == expected.rfc5424.to_pylist()
    assert found.bsd.to_pylist() == expected.bsd.to_pylist()
    assert found.parts.keys() == expected.parts.keys()
    for name, values in expected.parts.items():
        if found[name].to_pylist() != values.to_pylist():
            row = next(row for row, (a, b) in enumerate(zip(found[name].to_pylist(), values.to_pylist(),
                                                                strict=True)) if a != b)
            pytest.fail(f"{name} of {lines[row].as_py()!r}: compiled {found[name][row].as_py()!r}, "
                        f"regex {values[row].as_py()!r}")
        found[name].validate(full=True)


def _test_strings() -> list[str]:
    """Every string literal of the collector tests, and each of its lines."""
    strings: set[str] = set()
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                text = node.value if isinstance(node.value, str) else node.value.decode("utf-8", "replace")
                strings.add(text)
                strings.update(re.split(r"\r\n|\r|\n", text))
    return sorted(strings)


def test_headers_of_every_string_in_the_collector_tests() -> None:
    compiled("syslog_header")
    strings = _test_strings()
    assert len(strings) > 1000
    lines = _lines([text.encode("utf-8", "surrogatepass") for text in strings])
    _same_headers(lines)
    _same_headers(lines.slice(7, 500))


def _stream(corpora: Path) -> list[bytes]:
    """bench.ingest's stream (`bench.ingest.build_lines`): loghub's OpenSSH lines with PRI 38, a pid each."""
    template = (corpora / "loghub" / "OpenSSH_2k.log").read_bytes().splitlines()
    return [b"<38>" + re.sub(rb"sshd\[\d+\]", b"sshd[%d]" % (100000 + index), line, count=1)
            for index, line in enumerate(template) if line]


def test_headers_of_loghub_and_the_bench_stream(corpora: Path) -> None:
    compiled("syslog_header")
    for name in ("OpenSSH_2k.log", "Apache_2k.log"):
        _same_headers(_lines((corpora / "loghub" / name).read_bytes().splitlines()))
    _same_headers(_lines(_stream(corpora)))


MONTHS = ("Jan", "Feb", "Dec", "jan", "Ja")
HEADER_PIECES = st.one_of(
    st.sampled_from(["<", ">", "<13>", "<1>", "<999>", "<1000>", "<13> ", "<86>1 ", " ", "  ", ":", ": ", "[", "]",
                     "[]", "[1]", "[a b]", ".", "T", "Z", "+", "-", "+01:00", "-0530", "+01:0", "\t", "\n", "\x00",
                     "é", "\ufeff", "²", "-", "1", "12", "123", "2024-03-01T09:00:00", "2024-03-01T09:00:00.123",
                     ".1234567890", ".123456789", "09:00:00", "9:00:00", "09:00", "host", "web01", "sshd", "su",
                     "sshd(pam_unix)", "syslogd 1.4.1", "CEF:0|a|b", "pam_unix(sshd:auth):"]),
    st.sampled_from(MONTHS), st.sampled_from((*FACILITY_NAMES, "authpri", "local8", "auth.")),
    st.sampled_from((*tuple(LEVEL_CODES), "errors", "inf")),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=4))


# (valid, invalid) choices for each part of a BSD header, in order
_PARTS: list[tuple[list[str], list[str]]] = [
    (["", "<38>", "<38> ", "<1>", "<191>"], ["<1234>", "<>", "<86>1 ", "<38>  ", "<3a>", "<"]),
    (["Dec", "Feb", "Mar"], ["dec", "De", "Decx", "2024-03-01T"]),
    ([" ", "  "], ["", "\t"]),
    (["10", "1", "05"], ["100", "", "x"]),
    ([" "], ["  ", ""]),
    (["06:55:46"], ["6:55:46", "06:55:4", "06:55", "06-55-46"]),
    (["", ".1", ".123456789"], [".1234567890", ".", ".x"]),
    ([" host ", "  LabSZ  ", " 10.0.0.1 ", " h:st "], [" ", " host", ""]),
    (["", "auth.info ", "authpriv.warn  ", "local7.err ", "kern.error "],
     ["authpri.info ", "auth.inf ", "auth.info", "auth.errors ", "x.info ", "auth..info ", "ftpx.info ",
      "local8.err ", "uucp.warnx "]),
    (["sshd", "su", "sshd(pam_unix)", "CRON", "auth.info", "é"], ["", "a:b", "a]b", "syslogd 1.4.1", "a[b"]),
    (["", "[1]", "[]", "[a: b]", "[[1]"], ["[1", "[1]x", "[1]]", "]"]),
    ([": ", ": Failed password for root", ":: x"], ["", ":", " : ", ":x"]),
]
_ISO_TIMES = ["2024-03-01T09:00:00", "2024-03-01T09:00:00.5Z", "2024-03-01T09:00:00.123456789+01:00",
              "2024-03-01T09:00:00-0530", "2024-03-01T09:00:00+01:0", "2024-3-01T09:00:00", "2024-03-01T09:00:00z",
              "2024-03-01T09:00:00.1234567890", "2024-03-01 09:00:00"]


@st.composite
def _header_like(draw: st.DrawFn) -> str:
    """A BSD header line, valid part by part but for at most two parts replaced by near-misses; its time
    sometimes ISO 8601 (valid or not); and some text after it."""
    broken = draw(st.sets(st.integers(0, len(_PARTS) - 1), max_size=2))
    parts = [draw(st.sampled_from(invalid if index in broken else valid))
             for index, (valid, invalid) in enumerate(_PARTS)]
    if draw(st.booleans()):
        parts[1:7] = [draw(st.sampled_from(_ISO_TIMES))]
    return "".join(parts) + draw(st.text(max_size=20))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=200), st.text(max_size=120).map(str.encode), mutated(SYSLOG_SEEDS),
    _header_like().map(str.encode), st.lists(HEADER_PIECES, max_size=14).map(lambda parts: "".join(parts).encode()),
    st.sampled_from(SYSLOG_SEEDS).map(str.encode)), min_size=1, max_size=30))
def test_headers_of_arbitrary_and_header_like_lines(payloads: list[bytes]) -> None:
    compiled("syslog_header")
    _same_headers(_lines(payloads))


def _parsed(payloads: list[bytes]) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    parser = SyslogParser(ParserOptions(year=2024))
    batch = parser.parse_records([RawRecord(payload, f"test #{number}", NOW) for number, payload in
                                  enumerate(payloads)], tenant="council", source="syslog")
    events = [{"dataset": dataset, **row} for dataset, table in batch.tables.items() for row in table.to_pylist()]
    return events, [(letter.origin, letter.reason, letter.raw) for letter in batch.dead]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), mutated(SYSLOG_SEEDS), _header_like().map(str.encode),
                          st.sampled_from(SYSLOG_SEEDS).map(str.encode)), min_size=1, max_size=20))
def test_parse_gives_the_same_events_and_dead_letters_without_the_compiled_path(payloads: list[bytes]) -> None:
    compiled("syslog_header")
    found = _parsed(payloads)
    os.environ["SOC_NATIVE"] = "0"
    try:
        expected = _parsed(payloads)
    finally:
        del os.environ["SOC_NATIVE"]
    assert found == expected


@pytest.mark.parametrize(("name", "function"), [("syslog_header", "split_bsd"), ("redact", "candidates")])
def test_line_passes_refuse_offsets_outside_the_data(name: str, function: str) -> None:
    scan = getattr(compiled(name), function)
    offsets = pa.array([0, 4, 99], pa.int32()).buffers()[1]
    with pytest.raises(ValueError, match="outside the data buffer"):
        scan(offsets, b"abcd", 0, 2)
    with pytest.raises(ValueError, match="offsets buffer is shorter"):
        scan(offsets, b"abcd", 1, 2)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_INT64, st.binary(max_size=300)), max_size=40), st.integers(0, 3), st.text(max_size=8))
def test_the_compiled_keys_equal_arrows_join(rows: list[tuple[int, bytes]], cut: int, tenant: str) -> None:
    """`collectors._ids.event_keys` against the casts and `binary_join_element_wise` it replaces."""
    compiled("ids")
    prefix = event_key_prefix(tenant, "syslog")
    moments = pa.array([0] * cut + [moment for moment, _ in rows], pa.int64()).view(TIMESTAMP).slice(cut)
    content = pa.array([b"?"] * cut + [text for _, text in rows], pa.binary()).slice(cut)
    joined = pc.binary_join_element_wise(prefix.removesuffix(b"\x1f"), pc.cast(pc.cast(pc.cast(
        moments, pa.int64()), pa.string()), pa.binary()), content, b"\x1f")
    keys = _compiled_keys(prefix, moments, content)
    assert keys is not None
    keys.validate(full=True)
    assert keys.to_pylist() == joined.to_pylist()
    assert _compiled_keys(prefix, pa.array([None], TIMESTAMP), pa.array([b"x"])) is None
