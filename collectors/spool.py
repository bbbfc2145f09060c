"""The durable spool between intake and the event store: an acknowledged record survives kill -9 and power loss.

Listeners `append` a batch and acknowledge the sender only when it returns; the drainer reads `pending`
batches, stores them and `commit`s the position it reached. Everything appended is one logical byte stream,
cut into segment files named by the stream offset of their first byte (`segment-<offset>.spool`); a
`SpoolPosition` is the stream offset just past a batch. The frame format is in `collectors.spool_format`.

- `append` writes the frame with one `write(2)` and returns once an fdatasync that started after the write
  has finished. Appends of several threads share fdatasyncs (group commit): whoever finds no flush running
  starts one covering everything written so far, the others wait for it.
- `checkpoint.json` holds the committed position, replaced atomically (written, fsync'ed, renamed, directory
  fsync'ed) before the segments it drains fully are deleted.
- On open, the last segment is read from the committed position and cut at the first frame that is not
  whole and checksummed: a batch torn by a crash was never acknowledged.
- Disk use (the segment files) never exceeds `max_bytes`: `append` raises `SpoolFullError` instead. Room is
  given back when a whole segment is drained, so segments are at most a quarter of `max_bytes`. Memory does
  not grow with the spool: `pending` reads one frame at a time.

One process uses a spool directory at a time (an flock on `.lock`); within it, any number of appending
threads and one consumer (the drainer).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import zlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from citysoc.store.durable import fsync_dir, make_dirs_durably, replace_atomically
from citysoc.tenancy import validate_tenant_id
from collectors.errors import CollectorError
from collectors.records import RawRecord
from collectors.spool_format import HEADER, FrameError, check_header, decode_batch, encode_frame, frame_checksum

_PREFIX, _SUFFIX = "segment-", ".spool"
_CHECKPOINT = "checkpoint.json"
_READ_BUFFER = 1024 * 1024


class SpoolError(CollectorError):
    """Root of the spool's errors; `where` names the spool directory or segment file."""


class SpoolFullError(SpoolError):
    """The spool holds `max_bytes` not yet in the event store: refuse the batch (HTTP 429, RELP 5xx, stop
    reading TCP) until the drainer catches up."""


class SpoolCorruptError(SpoolError):
    """A frame before the end of the spool fails its checksum: the disk lost data the spool had made durable."""


class SpoolLockedError(SpoolError):
    """Another process has this spool directory open."""


@dataclass(frozen=True, order=True)
class SpoolPosition:
    """The spool stream offset just past a batch; positions order as the batches were appended."""

    offset: int


@dataclass(frozen=True)
class SpoolBatch:
    tenant: str
    source: str  # the parser its records go to
    records: Sequence[RawRecord]  # a RecordBlock for a block a listener appended, else a tuple
    position: SpoolPosition
    source_id: int | None = None  # the registered source the records came from, when the intake knew it


class Spool:
    """Append-only segments of checksummed batches under `directory` (the service uses `$SOC_HOME/spool`)."""

    def __init__(self, directory: Path, *, max_bytes: int = 2 * 1024**3, segment_bytes: int = 64 * 1024**2) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        # drained room is given back a whole segment at a time: segments of at most a quarter of the spool keep
        # at least three quarters of it for what waits for the store
        self.segment_bytes = min(segment_bytes, max(max_bytes // 4, 1))
        make_dirs_durably(directory)
        self._lock_file = open(directory / ".lock", "a+b")  # noqa: SIM115  (held for the spool's lifetime)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolLockedError("another process has this spool open: run one collector per spool directory",
                                   where=str(directory)) from None
        try:
            self._open()
        except BaseException:
            self._lock_file.close()
            raise

    def _open(self) -> None:
        """Find the segments and the committed position, and cut a torn tail (called holding the flock)."""
        directory = self.directory
        self._cond = threading.Condition()
        self._commit_lock = threading.Lock()  # one checkpoint write at a time, without blocking appends
        self._syncing = False
        self._failure: SpoolError | None = None
        self._segments = sorted(int(path.name[len(_PREFIX):-len(_SUFFIX)])
                                for path in directory.glob(f"{_PREFIX}*{_SUFFIX}"))
        self._committed = self._read_checkpoint()
        if self._segments:
            self._committed = max(self._committed, self._segments[0])  # nothing before the oldest segment is left
            self._end = self._segments[-1] + self._valid_length()
        if not self._segments or self._committed > self._end:
            # a fresh spool, or a checkpoint past what the disk kept: continue the stream after the checkpoint
            self._segments.append(self._committed)
            self._segment_path(self._committed).touch()
            fsync_dir(directory)
            self._end = self._committed
        self._drop_drained()
        self._synced = self._end  # what was read back from the disk is as durable as it can be made
        self._fd = os.open(self._segment_path(self._segments[-1]), os.O_WRONLY | os.O_APPEND)
        if os.fstat(self._fd).st_size > self._end - self._segments[-1]:
            os.ftruncate(self._fd, self._end - self._segments[-1])  # the torn tail of a crashed append
            os.fsync(self._fd)

    # --- writing ---------------------------------------------------------------------------------------

    def append(self, *, tenant: str, source: str, records: Sequence[RawRecord], source_id: int | None = None) -> None:
        """Append one batch; durable (written and fdatasync'ed) when this returns. Thread-safe.

        Raises `SpoolFullError` when the batch would take the spool's files past `max_bytes`."""
        if not records:
            return
        validate_tenant_id(tenant)
        if not source:
            raise ValueError("a batch needs the source (parser name) its records go to")
        frame = encode_frame(tenant=tenant, source=source, records=records, source_id=source_id)
        with self._cond:
            self._raise_if_failed()
            self._make_room(len(frame))
            end = self._write(frame)
            while self._synced < end:
                self._raise_if_failed()
                if self._syncing:
                    self._cond.wait()
                else:
                    self._flush()

    def _flush(self) -> None:
        """Called holding the lock: fdatasync everything written so far, letting others write meanwhile."""
        self._syncing = True
        target, fd = self._end, self._fd
        self._cond.release()
        try:
            os.fdatasync(fd)
        except OSError as error:
            # after a failed flush the kernel may have dropped the dirty pages: nothing written is trusted
            self._failure = SpoolError(f"flushing the spool failed ({error}); restart the collector",
                                       where=str(self.directory))
        finally:
            self._cond.acquire()
            self._syncing = False
            self._cond.notify_all()
        if self._failure is None:
            self._synced = max(self._synced, target)

    def _write(self, frame: bytes) -> int:
        local_end = self._end - self._segments[-1]
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as error:
            os.ftruncate(self._fd, local_end)  # no partial frame in the middle of the stream
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFullError(f"the disk is full ({error})", where=str(self.directory)) from error
            raise
        self._end += len(frame)
        return self._end

    def _make_room(self, size: int) -> None:
        """Called holding the lock: roll to a new segment when due; refuse a batch that would pass max_bytes."""
        while True:
            active = self._end - self._segments[-1]
            if self._end - self._segments[0] + size > self.max_bytes:
                if self._committed < self._end or active == 0:
                    pending = self._end - self._committed
                    raise SpoolFullError(
                        f"the spool is full: {pending:,} bytes wait for the event store, {size:,} more would pass "
                        f"max_bytes={self.max_bytes:,}; retry when the drainer has caught up",
                        where=str(self.directory))
                # everything is drained but the active segment still takes the room: start a new one
            elif active == 0 or active + size <= self.segment_bytes:
                return
            if self._syncing:  # the running flush holds the active segment's descriptor
                self._cond.wait()
                continue
            self._roll()

    def _roll(self) -> None:
        try:
            os.fdatasync(self._fd)  # the old segment is whole before a later one exists
        except OSError as error:
            self._failure = SpoolError(f"flushing the spool failed ({error}); restart the collector",
                                       where=str(self.directory))
            raise self._failure from error
        os.close(self._fd)
        self._synced = self._end
        self._segments.append(self._end)
        path = self._segment_path(self._end)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_dir(self.directory)
        self._drop_drained()

    # --- reading and committing ------------------------------------------------------------------------

    def pending(self, *, limit: int | None = None) -> Generator[SpoolBatch, None, None]:
        """Durable batches not yet committed, in append order; at most `limit` batches. One frame in memory at a
        time; appends made while iterating may or may not be included. Raises `SpoolCorruptError` for a frame
        the disk damaged."""
        with self._cond:
            position, end, segments = self._committed, self._synced, list(self._segments)
        produced = 0
        for index, base in enumerate(segments):
            stop = min(segments[index + 1] if index + 1 < len(segments) else end, end)
            if position >= stop:
                continue
            path = self._segment_path(base)
            with open(path, "rb", buffering=_READ_BUFFER) as segment:
                segment.seek(position - base)
                while position < stop:
                    try:
                        batch = _read_frame(segment, limit=stop - position)
                        tenant, source, source_id, records = decode_batch(batch)
                    except FrameError as error:
                        raise SpoolCorruptError(f"{error}: the spool cannot be read past this point",
                                                where=f"{path}@{position - base}") from None
                    position += HEADER.size + len(batch)
                    yield SpoolBatch(tenant, source, records, SpoolPosition(position), source_id)
                    produced += 1
                    if limit is not None and produced >= limit:
                        return

    def commit(self, position: SpoolPosition) -> None:
        """Everything up to and including `position` is in the event store: durably record it and delete the
        segments it drains fully. Committing an earlier position again does nothing."""
        with self._commit_lock:
            with self._cond:
                if position.offset <= self._committed:
                    return
                if position.offset > self._synced:
                    raise ValueError(f"position {position.offset} is past the spool's durable end {self._synced}")
            replace_atomically(self.directory / _CHECKPOINT,
                               json.dumps({"version": 1, "committed": position.offset}).encode())
            with self._cond:
                self._committed = position.offset
                self._drop_drained()

    def pending_bytes(self) -> int:
        """Bytes appended and not yet committed."""
        with self._cond:
            return self._end - self._committed

    def disk_bytes(self) -> int:
        """Bytes the segment files hold (what `max_bytes` bounds)."""
        with self._cond:
            return self._end - self._segments[0]

    # --- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush what was appended (appends still waiting for their flush return), release the directory."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._fd >= 0:
                if self._failure is None:
                    os.fdatasync(self._fd)
                    self._synced = self._end
                os.close(self._fd)
                self._fd = -1
            self._failure = self._failure or SpoolError("the spool is closed", where=str(self.directory))
            self._cond.notify_all()
        self._lock_file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------------------

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _segment_path(self, base: int) -> Path:
        return self.directory / f"{_PREFIX}{base:020d}{_SUFFIX}"

    def _read_checkpoint(self) -> int:
        path = self.directory / _CHECKPOINT
        try:
            return int(json.loads(path.read_bytes())["committed"])
        except FileNotFoundError:
            # never committed, or the checkpoint was removed: replay what is left (the store skips known ids)
            return self._segments[0] if self._segments else 0
        except (ValueError, KeyError, TypeError):
            raise SpoolCorruptError("the checkpoint is unreadable (it is only ever replaced whole, so something "
                                    "else wrote it); delete it to replay the spool from its oldest segment, "
                                    "which the store de-duplicates", where=str(path)) from None

    def _drop_drained(self) -> None:
        """Delete segments wholly before the committed position (never the active one)."""
        while len(self._segments) > 1 and self._segments[1] <= self._committed:
            self._segment_path(self._segments.pop(0)).unlink(missing_ok=True)

    def _valid_length(self) -> int:
        """Bytes of the last segment that are whole, checksummed frames: scanned from the committed position."""
        base = self._segments[-1]
        path = self._segment_path(base)
        size = path.stat().st_size
        position = max(self._committed - base, 0)
        if position > size:
            return size
        with open(path, "rb", buffering=_READ_BUFFER) as segment:
            segment.seek(position)
            while position < size:
                try:
                    length = _scan_frame(segment, limit=size - position)
                except FrameError:
                    break
                position += HEADER.size + length
        return position


def _read_frame(segment: BinaryIO, *, limit: int) -> bytes:
    length = check_header(header := segment.read(HEADER.size))
    if HEADER.size + length > limit:
        raise FrameError("frame runs past the end of the segment")
    batch = segment.read(length)
    if len(batch) != length or frame_checksum(length, batch) != HEADER.unpack(header)[2]:
        raise FrameError("frame checksum does not match")
    return batch


def _scan_frame(segment: BinaryIO, *, limit: int) -> int:
    """Verify the frame at the current offset chunk by chunk (bounded memory); its batch length."""
    header = segment.read(HEADER.size)
    length = check_header(header)
    if HEADER.size + length > limit:
        raise FrameError("frame runs past the end of the segment")
    checksum, remaining = frame_checksum(length, b""), length
    while remaining:
        chunk = segment.read(min(remaining, _READ_BUFFER))
        if not chunk:
            raise FrameError("frame cut short")
        checksum = zlib.crc32(chunk, checksum)
        remaining -= len(chunk)
    if checksum != HEADER.unpack(header)[2]:
        raise FrameError("frame checksum does not match")
    return length
