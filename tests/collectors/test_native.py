"""The compiled fast paths (`collectors/native/`) against their pure twins on the same input.

Each compiled module must give exactly what the pure path gives: the event ids equal `hashlib`'s BLAKE2b
digests (random keys, an empty batch, sliced and large_binary arrays), and a whole ingest run stores the
same tables and dead letters with `SOC_NATIVE=0` as with the compiled path. Under `CI=true` a module that
was not built fails the run (CI proves the compiled path); elsewhere its tests skip with the reason.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citysoc.deadletter import DeadLetterStore
from citysoc.ids import Occurrences, event_ids_of_keys, number_occurrences
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors import native
from collectors.base import hex_digests
from collectors.ingest import ingest_files
from tests.conftest import require

MODULES = ("ids",)


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
    batches = [[b"a", b"b", b"c"], [b"d", b"a", b"e"], [b"f", b"g"], [b"h", b"h", b"a", b"h"], [b"i"], [b"a", b"j"]]
    pure, arrow = Occurrences(), Occurrences()
    for keys in batches:
        expected = event_ids_of_keys(keys, pure)
        found = hex_digests(pa.array(keys))
        assert found is not None
        assert number_occurrences(*found, arrow).to_pylist() == expected
        pure.next_batch()
        arrow.next_batch()
    assert arrow.count(hashlib.blake2b(b"a", digest_size=16).hexdigest()) == pure.count(
        hashlib.blake2b(b"a", digest_size=16).hexdigest()) == 2


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
