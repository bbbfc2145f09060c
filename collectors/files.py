"""Reading files in bounded memory: gzip detected by content, streamed in chunks, cut into lines.

Whatever a file holds, a reader keeps at most a few chunks and one record's worth of bytes in memory:
- gzip is detected by its magic bytes, not its name, and decompressed as a stream; a stream that ends
  early or is corrupt yields everything that was readable, then one `ReadProblem` record saying so;
- a gzip stream that expands more than `ReadLimits.max_expansion` times its compressed size (once past
  `expansion_floor`) is taken for a decompression bomb: reading stops there, with one `ReadProblem` record;
- lines end at LF, CRLF or a lone CR (old Mac and some network devices), also when a CRLF is split between
  two chunks; a line over `max_record_bytes` is handed over as its first `kept_prefix_bytes` with a
  `ReadProblem` that gives its whole size and SHA-256, and reading goes on with the next line.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from collectors.records import RawRecord, ReadProblem, RecordBlock

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ReadLimits:
    """How much of a file a reader holds at once, and what it refuses."""

    max_record_bytes: int = 1024 * 1024
    kept_prefix_bytes: int = 64 * 1024
    chunk_bytes: int = 1024 * 1024
    # Deflate cannot expand more than about 1032 times: past 1000 the data was made to expand (a bomb of one
    # repeated byte); real logs stay far below (10-50 times). Checked once `expansion_floor` bytes came out.
    max_expansion: int = 1000
    expansion_floor: int = 64 * 1024 * 1024


DEFAULT_LIMITS = ReadLimits()


class ReadError(Exception):
    """The byte stream of a file ended in a way worth a dead letter; raised after every readable chunk."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes, whatever its suffix says."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_maybe_gzip(path: Path) -> BinaryIO:
    """The file opened for binary reading, transparently decompressed when it is gzip."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def read_chunks(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks of at most `limits.chunk_bytes`.

    Raises `ReadError` after the last readable chunk when a gzip stream is truncated, corrupt or a bomb.
    """
    with path.open("rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            raw.seek(0)
            while chunk := raw.read(limits.chunk_bytes):
                yield chunk
            return
        raw.seek(0)
        produced = 0
        pieces: list[bytes] = []
        held = 0
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            while True:
                try:
                    # read1: what one decompression step gives, so a truncated stream loses nothing it held
                    piece = stream.read1(limits.chunk_bytes - held)
                except EOFError:
                    yield b"".join(pieces)
                    raise ReadError(f"gzip stream truncated after {produced} bytes: the rest of the file is "
                                    "missing (copied while still being written?)") from None
                except (gzip.BadGzipFile, zlib.error, OSError) as exc:
                    yield b"".join(pieces)
                    raise ReadError(f"gzip stream corrupt after {produced} bytes ({exc})") from None
                produced += len(piece)
                if piece:
                    pieces.append(piece)
                    held += len(piece)
                if held >= limits.chunk_bytes or (not piece and held):
                    yield b"".join(pieces)
                    pieces, held = [], 0
                if not piece:
                    return
                compressed = max(raw.tell(), 1)
                if produced > limits.expansion_floor and produced > limits.max_expansion * compressed:
                    yield b"".join(pieces)
                    raise ReadError(f"gzip stream expands over {limits.max_expansion} times ({compressed} bytes "
                                    f"gave {produced}): refused as a decompression bomb after {produced} bytes")


class _LongLine:
    """An over-long line being skipped: its beginning, its size and its digest so far."""

    def __init__(self, start: bytes, limits: ReadLimits) -> None:
        self.prefix = start[: limits.kept_prefix_bytes]
        self.size = len(start)
        self.digest = hashlib.sha256(start)

    def add(self, data: bytes, limits: ReadLimits) -> None:
        if len(self.prefix) < limits.kept_prefix_bytes:
            self.prefix += data[: limits.kept_prefix_bytes - len(self.prefix)]
        self.size += len(data)
        self.digest.update(data)

    def problem(self, limits: ReadLimits) -> ReadProblem:
        return ReadProblem(
            f"record of {self.size} bytes is over the {limits.max_record_bytes}-byte limit: its first "
            f"{len(self.prefix)} bytes are kept", size=self.size, sha256=self.digest.hexdigest())


def split_lines(chunks: Iterable[bytes], *, name: str, received: datetime,
                limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[RawRecord]:
    """Cut a stream of chunks into one `RawRecord` per line (blank lines included: the parser counts them).

    `origin` is `name:lineno`. A `ReadError` from the chunks becomes a last record carrying the problem and
    the incomplete line read before it.
    """
    for piece in _line_pieces(chunks, name=name, received=received, limits=limits):
        if isinstance(piece, RawRecord):
            yield piece
        else:
            first, lines = piece
            yield from (RawRecord(line, f"{name}:{number}", received) for number, line in enumerate(lines, first))


def split_line_blocks(chunks: Iterable[bytes], *, name: str, received: datetime,
                      limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Sequence[RawRecord]]:
    """`split_lines` a stretch at a time: the whole lines of a chunk as one `RecordBlock` (origins `name:`
    and the line number, no object per line), a line with a `ReadProblem` as a list of its one record."""
    for piece in _line_pieces(chunks, name=name, received=received, limits=limits):
        if isinstance(piece, RawRecord):
            yield [piece]
        elif piece[1]:
            yield RecordBlock.of(piece[1], received=received, origin_prefix=f"{name}:", first=piece[0])


def _line_pieces(chunks: Iterable[bytes], *, name: str, received: datetime,
                 limits: ReadLimits) -> Iterator[RawRecord | tuple[int, list[bytes]]]:
    """The lines of the chunks: (first line number, lines) for a stretch of lines within the size limit, a
    `RawRecord` for a line over it, the last line, and the read problem that ended the stream."""
    pending = b""
    long_line: _LongLine | None = None
    lineno = 0
    drop_lf = False  # the previous chunk ended with CR: a LF starting this one belongs to the same CRLF
    iterator = iter(chunks)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            break
        except ReadError as exc:
            lineno += 1
            tail = long_line.prefix if long_line else pending
            yield RawRecord(tail[: limits.kept_prefix_bytes], f"{name}:{lineno}", received, ReadProblem(exc.reason))
            return
        if drop_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        drop_lf = chunk.endswith(b"\r")
        if long_line is not None:
            end = _first_break(chunk)
            if end < 0:
                long_line.add(chunk, limits)
                continue
            long_line.add(chunk[:end], limits)
            lineno += 1
            yield RawRecord(long_line.prefix, f"{name}:{lineno}", received, long_line.problem(limits))
            long_line = None
            chunk = chunk[end + 2:] if chunk[end:end + 2] == b"\r\n" else chunk[end + 1:]
        data = pending + chunk if pending else chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:
            pending = data
        else:
            pending = data[cut + 1:]
            lines = data[: cut + 1].splitlines()
            if max(map(len, lines), default=0) <= limits.max_record_bytes:  # the usual chunk
                yield lineno + 1, lines
                lineno += len(lines)
                lines = []
            for line in lines:
                lineno += 1
                if len(line) > limits.max_record_bytes:
                    over = _LongLine(line, limits)
                    yield RawRecord(over.prefix, f"{name}:{lineno}", received, over.problem(limits))
                else:
                    yield RawRecord(line, f"{name}:{lineno}", received)
        if len(pending) > limits.max_record_bytes:
            long_line, pending = _LongLine(pending, limits), b""
    if long_line is not None:
        lineno += 1
        yield RawRecord(long_line.prefix, f"{name}:{lineno}", received, long_line.problem(limits))
    elif pending:
        yield RawRecord(pending, f"{name}:{lineno + 1}", received)


def _first_break(data: bytes) -> int:
    positions = [position for position in (data.find(b"\n"), data.find(b"\r")) if position >= 0]
    return min(positions) if positions else -1


def read_lines(path: Path, *, received: datetime, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[RawRecord]:
    """The lines of a (possibly gzipped) text file as records, in bounded memory (see the module docstring)."""
    yield from split_lines(read_chunks(path, limits), name=str(path), received=received, limits=limits)


def read_line_blocks(path: Path, *, received: datetime,
                     limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Sequence[RawRecord]]:
    """`read_lines` a chunk at a time (`split_line_blocks`)."""
    yield from split_line_blocks(read_chunks(path, limits), name=str(path), received=received, limits=limits)
