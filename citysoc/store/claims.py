"""The lake's id index: which events each tenant, dataset and day holds, so that a replay stores nothing twice.

The index lives beside the data, as sorted runs of fixed-width keys per partition:
`<lake>/_claims/dataset=<d>/tenant=<t>/day=<YYYY-MM-DD>/run-<id>.keys` (Spark and the store's readers skip
names starting with `_`). A write checks its keys against the runs of each day it touches (a binary search
per key and run, in numpy), writes the new keys as one more run, and commits that run with its Parquet files
through the same journal (`citysoc.store.journal`): both are staged, journalled in one SQLite transaction and
then renamed into place, so a crash leaves a write's files and its claims together or neither.

A key is 16 bytes: `primary` = the event's second of its UTC day (17 bits) then the top 47 bits of the id's
128-bit value, `secondary` = the next 64 bits. An id of 32 lower-case hex digits (every id the collectors
make) is its own value; any other id string is hashed to 128 bits (BLAKE2b). An event id covers the event's
time, so (day, second, 111 bits of the id) names an event as well as the id does; two different ids share a
key only if they share those 111 bits within the same second of the same partition (odds of 2^-111 per pair).
The same id given again with another `@timestamp` second would be another event, as it always was here.

Runs are sorted by `primary`: a batch's keys, sorted the same way, are looked up with `searchsorted`, and
only within each run's own key range, so a live batch (its last seconds) touches the ends of the runs only.
A new run absorbs the partition's runs no more than twice what it has gathered, smallest first, up to
`MAX_RUN_KEYS` (1,048,576 keys, 16 MiB): a partition of n keys keeps n / 2^20 full runs and O(log n) smaller
ones, and each key is rewritten O(log n) times. A batch spread over a whole day that is already full (every run
overlapping it: a day-long file re-read out of order) searches every run, about 0.06 µs a key per run.
Memory: the batch's keys, the runs being merged (at most 16 MiB of keys, about 80 MiB while merging) and the
pages of the runs searched, which are memory-mapped (the kernel's page cache, not the process's heap);
nothing is cached between writes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CLAIMS = "_claims"  # under the lake, beside the dataset folders: hidden from Spark's listing
RUN_SUFFIX = ".keys"
MAGIC = b"SOCKEYS1"  # then the number of keys (little-endian uint64), the primaries, the secondaries
HEADER = len(MAGIC) + 8
MAX_RUN_KEYS = 1024 * 1024  # 16 MiB: runs stop merging at this size
DAY_SECONDS = 86_400
# the index as SQLite tables, before runs: keyed by (scope, second, id), and before that by (tenant, dataset, id)
LEGACY_TABLES = ("event_claim", "claim_scope", "stored_event")
_PRIMARY_ID_BITS = 47  # the primary: 17 bits of second of the day, then 47 bits of the id

_HEX = np.full(256, 255, np.uint8)  # ASCII -> nibble; 255 for anything but 0-9 a-f
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


@dataclass(frozen=True)
class Keys:
    """Claim keys of rows, in row order: the partition day (days since the epoch) and the two key words."""

    day: np.ndarray  # int64
    primary: np.ndarray  # uint64
    secondary: np.ndarray  # uint64


@dataclass(frozen=True)
class Run:
    """One run file of a partition, sorted by `primary`."""

    path: Path
    primary: np.ndarray
    secondary: np.ndarray

    def __len__(self) -> int:
        return len(self.primary)


def id_values(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit value of each id as (high, low) uint64 words: hex ids decoded in one vectorised pass, any
    other id hashed."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if ids.type != pa.string():  # the buffers are read as 32-bit offsets (a file may hold large strings)
        ids = ids.cast(pa.string())
    count = len(ids)
    decoded = _hex_ids(ids)
    if decoded is not None:
        return decoded
    digits = np.full((count, 32), 255, np.uint8)
    lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False)
    fixed = lengths == 32
    if fixed.any():
        hex_ids = ids if fixed.all() else ids.filter(pa.array(fixed))
        data = hex_ids.buffers()[2]
        offsets = np.frombuffer(hex_ids.buffers()[1], np.int32, len(hex_ids) + 1, hex_ids.offset * 4)
        raw = np.frombuffer(data, np.uint8, offsets[-1] - offsets[0], offsets[0]).reshape(-1, 32)
        digits[fixed] = _HEX[raw]
    bad = (digits > 15).any(axis=1)
    value = (digits[:, 0::2] << 4) | digits[:, 1::2]  # (count, 16) bytes
    if bad.any():
        for row in np.flatnonzero(bad).tolist():
            text = ids[row].as_py()
            value[row] = np.frombuffer(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest(), np.uint8)
    words = np.ascontiguousarray(value).view(">u8")
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def _hex_ids(ids: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of ids that are all 32 lower-case hex digits (every id the collectors make), decoded by
    `bytes.fromhex` over the whole buffer; None when some id is not."""
    offsets = np.frombuffer(ids.buffers()[1], np.int32, len(ids) + 1, ids.offset * 4)
    if not len(ids) or ids.null_count or offsets[-1] - offsets[0] != 32 * len(ids) or (
            np.diff(offsets) != 32).any():
        return None
    raw = np.frombuffer(ids.buffers()[2], np.uint8, offsets[-1] - offsets[0], offsets[0])
    if ((raw - np.uint8(ord("A"))) < 6).any():  # upper-case hex is another id than its lower-case form
        return None
    try:
        value = bytes.fromhex(raw.tobytes().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(value) != 16 * len(ids):  # fromhex skips whitespace between digit pairs
        return None
    words = np.frombuffer(value, ">u8").reshape(-1, 2)
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def keys_of(ids: pa.Array | pa.ChunkedArray, timestamps: pa.Array | pa.ChunkedArray) -> Keys:
    """The claim keys of events given their `event.id` and `@timestamp` (microseconds; neither null)."""
    high, low = id_values(ids)
    micros = timestamps.cast(pa.int64())
    if isinstance(micros, pa.ChunkedArray):
        micros = micros.combine_chunks()
    seconds = micros.to_numpy() // 1_000_000  # floor: a time before 1970 belongs to the day before
    day = seconds // DAY_SECONDS
    second_of_day = (seconds - day * DAY_SECONDS).astype(np.uint64)
    primary = (second_of_day << np.uint64(_PRIMARY_ID_BITS)) | (high >> np.uint64(64 - _PRIMARY_ID_BITS))
    return Keys(day, primary, (high << np.uint64(_PRIMARY_ID_BITS)) | (low >> np.uint64(64 - _PRIMARY_ID_BITS)))


def day_name(day: int) -> str:
    return str(np.datetime64(day, "D"))


def partition(events_dir: Path, *, dataset: str, tenant: str, day: int) -> Path:
    return events_dir / CLAIMS / f"dataset={dataset}" / f"tenant={tenant}" / f"day={day_name(day)}"


def runs(folder: Path) -> list[Run]:
    """The runs of a partition folder, memory-mapped (none when it does not exist)."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(RUN_SUFFIX))
    except FileNotFoundError:
        return []
    return [read_run(folder / name) for name in names]


def read_run(path: Path) -> Run:
    with open(path, "rb") as handle:
        header = handle.read(HEADER)
    count = int.from_bytes(header[len(MAGIC):], "little") if header[:len(MAGIC)] == MAGIC else -1
    if count < 0 or path.stat().st_size != HEADER + 16 * count:
        raise ValueError(f"{path}: not a claim run of this store (bad header or size)")
    if not count:
        empty = np.empty(0, np.uint64)
        return Run(path, empty, empty)
    words = np.memmap(path, np.uint64, "r", HEADER, (2 * count,))
    return Run(path, words[:count], words[count:])


def write_run(path: Path, primary: np.ndarray, secondary: np.ndarray) -> None:
    """Write and fsync a run (keys sorted by primary)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for part in (MAGIC + len(primary).to_bytes(8, "little"), primary.astype("<u8", copy=False).data,
                     secondary.astype("<u8", copy=False).data):
            view = memoryview(part).cast("B")
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def unclaimed(primary: np.ndarray, secondary: np.ndarray, found: list[Run]) -> np.ndarray:
    """A mask of the keys (sorted by primary, distinct) that no run holds."""
    new = np.ones(len(primary), bool)
    for run in found:
        if not len(run):
            continue
        low = int(np.searchsorted(primary, run.primary[0], side="left"))
        high = int(np.searchsorted(primary, run.primary[-1], side="right"))
        if low >= high:
            continue  # no key of the batch falls in this run's range
        wanted = primary[low:high]
        at = np.minimum(np.searchsorted(run.primary, wanted, side="left"), len(run) - 1)
        hit = run.primary[at] == wanted
        same = hit & (run.secondary[at] == secondary[low:high])
        new[low:high] &= ~same
        for offset in np.flatnonzero(hit & ~same).tolist():  # a primary shared with another key: look further
            start = int(at[offset])
            stop = int(np.searchsorted(run.primary, wanted[offset], side="right"))
            if (run.secondary[start:stop] == secondary[low + offset]).any():
                new[low + offset] = False
    return new


def to_merge(found: list[Run], size: int) -> list[Run]:
    """The runs a new run of `size` keys absorbs: the smallest first, each while it is no more than twice what
    is gathered so far, up to `MAX_RUN_KEYS` in all."""
    chosen: list[Run] = []
    for run in sorted(found, key=len):
        if len(run) > 2 * size or size + len(run) > MAX_RUN_KEYS:
            break
        chosen.append(run)
        size += len(run)
    return chosen


def merged(primary: np.ndarray, secondary: np.ndarray, others: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """The keys with those of `others`, sorted by primary (each input is sorted: a stable sort merges runs)."""
    if not others:
        return primary, secondary
    all_primary = np.concatenate([primary, *(run.primary for run in others)])
    all_secondary = np.concatenate([secondary, *(run.secondary for run in others)])
    order = np.argsort(all_primary, kind="stable")
    return all_primary[order], all_secondary[order]


def run_name() -> str:
    return f"run-{uuid.uuid4().hex}{RUN_SUFFIX}"


def all_runs(events_dir: Path, *, tenant: str | None = None, dataset: str | None = None) -> Iterator[Path]:
    root = events_dir / CLAIMS
    pattern = f"dataset={dataset or '*'}/tenant={tenant or '*'}/day=*/*{RUN_SUFFIX}"
    return root.glob(pattern) if root.is_dir() else iter(())


def count(events_dir: Path, *, tenant: str | None, dataset: str | None) -> int:
    """Keys held (each event once: a partition's runs never share a key once pending swaps are complete)."""
    return sum((path.stat().st_size - HEADER) // 16 for path in all_runs(events_dir, tenant=tenant, dataset=dataset))
