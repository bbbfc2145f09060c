"""The spool's on-disk frame: one appended batch of records, checksummed, readable without loading a segment.

A frame is a 12-byte header then the batch:

    magic b"CSP1" | length: u32 | crc32(length bytes + batch): u32 | batch (length bytes)

The magic makes a zero-filled tail (what a file system may show after power loss) invalid rather than an
empty frame whose CRC happens to be 0; the CRC covers the length too, so a torn length is caught. The batch
is columnar, little-endian, so that encoding and decoding are a few C-level joins and slices per batch
rather than a struct call per field:

    version: u8 | tenant length: u16 | source length: u16 | records n: u32 | source id: i64 (-1: none)
    tenant (UTF-8) | source (UTF-8)
    payload lengths: n x u32 | origin lengths: n x u32 | received: n x i64 (microseconds since the Unix epoch, UTC)
    payloads, concatenated | origins (UTF-8), concatenated

That is version 2, for a list of records (HTTP, RELP, pullers). A `RecordBlock` (syslog over TCP and TLS:
one run of records per read) is written as version 3, its payloads as the Arrow offsets and data they already
are, and arrival time and origin once per run rather than per record:

    version 3: u8 | tenant length: u16 | source length: u16 | records n: u32 | source id: i64 | runs r: u32
    tenant (UTF-8) | source (UTF-8)
    r x (count: u32 | received: i64 | first number: u64 | origin prefix length: u16) | origin prefixes (UTF-8)
    payload offsets: (n + 1) x i32, from 0 | payloads, concatenated

Both are read; reading a version 3 batch makes no Python object per record (a `RecordBlock` again).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate, pairwise

import pyarrow as pa

from collectors.records import RawRecord, RecordBlock, RecordRun

MAGIC = b"CSP1"
HEADER = struct.Struct("<4sII")
_LENGTH = struct.Struct("<I")
_BATCH_HEAD = struct.Struct("<BHHIq")
_VERSION = 2
_BLOCK_VERSION = 3
_RUNS = struct.Struct("<I")
_RUN = struct.Struct("<IqQH")
_NO_SOURCE_ID = -1
MAX_FRAME_BYTES = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BIG_ENDIAN = sys.byteorder == "big"
# Origins are text a collector made up (file names may carry undecodable bytes as surrogates): keep any str.
_TEXT_ERRORS = "surrogatepass"


class FrameError(ValueError):
    """A frame's bytes are not a batch this code wrote (checksum, magic, version or lengths disagree)."""


def frame_checksum(length: int, batch: bytes | memoryview) -> int:
    return zlib.crc32(batch, zlib.crc32(_LENGTH.pack(length)))


def encode_frame(*, tenant: str, source: str, records: Sequence[RawRecord], source_id: int | None = None) -> bytes:
    """The frame of one batch. Raises ValueError for a naive `received` (the spool keeps UTC instants).
    `source_id`: the registered source the records came from (data health per source), when known."""
    if source_id is not None and source_id < 0:
        raise ValueError("a source id is a positive number")
    tenant_bytes, source_bytes = tenant.encode(), source.encode()
    if len(tenant_bytes) > 0xFFFF or len(source_bytes) > 0xFFFF:
        raise ValueError("tenant and source names are limited to 65,535 bytes")
    if isinstance(records, RecordBlock):
        batch = _encode_block(tenant_bytes, source_bytes, records, source_id)
    else:
        batch = _encode_list(tenant_bytes, source_bytes, records, source_id)
    if len(batch) > MAX_FRAME_BYTES:
        raise ValueError(f"a batch of {len(batch)} bytes does not fit one spool frame (4 GiB): append smaller batches")
    return HEADER.pack(MAGIC, len(batch), frame_checksum(len(batch), batch)) + batch


def _encode_block(tenant: bytes, source: bytes, block: RecordBlock, source_id: int | None) -> bytes:
    payloads = block.payloads
    buffers = payloads.buffers()
    offsets = array("i")
    offsets.frombytes(buffers[1] if buffers[1] is not None else b"\0\0\0\0")
    offsets = offsets[payloads.offset:payloads.offset + len(payloads) + 1] if len(payloads) else array("i", [0])
    start, end = offsets[0], offsets[-1]
    data = memoryview(buffers[2] if buffers[2] is not None else b"")[start:end]
    if start:
        offsets = array("i", (offset - start for offset in offsets))
    prefixes = [run.origin_prefix.encode("utf-8", _TEXT_ERRORS) for run in block.runs]
    runs = [_RUN.pack(run.size, (run.received - _EPOCH) // _MICROSECOND, run.first, len(prefix))
            for run, prefix in zip(block.runs, prefixes, strict=True)]
    if any(len(prefix) > 0xFFFF for prefix in prefixes):
        raise ValueError("origin prefixes are limited to 65,535 bytes")
    if _BIG_ENDIAN:
        offsets.byteswap()
    return b"".join((
        _BATCH_HEAD.pack(_BLOCK_VERSION, len(tenant), len(source), len(block),
                         _NO_SOURCE_ID if source_id is None else source_id),
        _RUNS.pack(len(runs)), tenant, source, *runs, *prefixes, offsets.tobytes(), data,
    ))


def _encode_list(tenant_bytes: bytes, source_bytes: bytes, records: Sequence[RawRecord],
                 source_id: int | None) -> bytes:
    payloads = [record.payload for record in records]
    origins = [record.origin.encode("utf-8", _TEXT_ERRORS) for record in records]
    payload_lengths = array("I", map(len, payloads))
    origin_lengths = array("I", map(len, origins))
    received = array("q", _micros(records))
    if _BIG_ENDIAN:
        for column in (payload_lengths, origin_lengths, received):
            column.byteswap()
    return b"".join((
        _BATCH_HEAD.pack(_VERSION, len(tenant_bytes), len(source_bytes), len(records),
                         _NO_SOURCE_ID if source_id is None else source_id),
        tenant_bytes, source_bytes,
        payload_lengths.tobytes(), origin_lengths.tobytes(), received.tobytes(),
        *payloads, *origins,
    ))


def _micros(records: Sequence[RawRecord]) -> list[int]:
    values: list[int] = []
    last: datetime | None = None
    last_value = 0
    for record in records:
        moment = record.received
        if moment is not last:  # listeners stamp many records with one datetime: convert it once
            if moment.tzinfo is None:
                raise ValueError(f"{record.origin}: received must be timezone-aware (UTC)")
            last, last_value = moment, (moment - _EPOCH) // _MICROSECOND
        values.append(last_value)
    return values


def check_header(header: bytes) -> int:
    """The batch length a frame header announces (FrameError when it is not one)."""
    if len(header) < HEADER.size:
        raise FrameError("frame header cut short")
    magic, length, _ = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError("no frame starts here")
    return int(length)


def decode_batch(batch: bytes) -> tuple[str, str, int | None, Sequence[RawRecord]]:
    """Tenant, source, source id and records of a batch whose checksum was verified (a `RecordBlock` for a
    version 3 batch, a tuple of `RawRecord`s for version 2)."""
    try:
        version, tenant_length, source_length, count, source_id = _BATCH_HEAD.unpack_from(batch, 0)
    except struct.error:
        raise FrameError("batch head cut short") from None
    if version == _BLOCK_VERSION:
        return _decode_block(batch, tenant_length, source_length, count, source_id)
    if version != _VERSION:
        raise FrameError(f"batch format version {version} is not known to this CitySOC")
    view = memoryview(batch)
    position = _BATCH_HEAD.size
    tenant = bytes(view[position:position + tenant_length]).decode()
    position += tenant_length
    source = bytes(view[position:position + source_length]).decode()
    position += source_length
    payload_lengths, origin_lengths, received = array("I"), array("I"), array("q")
    for column in (payload_lengths, origin_lengths, received):
        size = column.itemsize * count
        column.frombytes(view[position:position + size])
        position += size
        if _BIG_ENDIAN:
            column.byteswap()
    if position + sum(payload_lengths) + sum(origin_lengths) != len(batch):
        raise FrameError("batch lengths do not add up")
    payload_ends = list(accumulate(payload_lengths, initial=position))
    origin_ends = list(accumulate(origin_lengths, initial=payload_ends[-1]))
    payloads = [batch[start:end] for start, end in pairwise(payload_ends)]
    first = origin_ends[0]
    try:  # ASCII origins (every listener's and reader's): one decode, then slices at the same offsets
        text = batch[first:origin_ends[-1]].decode("ascii")
        origins = [text[start - first:end - first] for start, end in pairwise(origin_ends)]
    except UnicodeDecodeError:
        origins = [batch[start:end].decode("utf-8", _TEXT_ERRORS) for start, end in pairwise(origin_ends)]
    # one datetime per distinct arrival time: records stamped together keep sharing one object
    moments = {micros: _EPOCH + micros * _MICROSECOND for micros in set(received)}
    records = tuple(map(RawRecord, payloads, origins, map(moments.__getitem__, received)))
    return tenant, source, None if source_id == _NO_SOURCE_ID else int(source_id), records


def _decode_block(batch: bytes, tenant_length: int, source_length: int, count: int,
                  source_id: int) -> tuple[str, str, int | None, RecordBlock]:
    try:
        (run_count,) = _RUNS.unpack_from(batch, _BATCH_HEAD.size)
        position = _BATCH_HEAD.size + _RUNS.size
        tenant = batch[position:position + tenant_length].decode()
        position += tenant_length
        source = batch[position:position + source_length].decode()
        position += source_length
        heads = [_RUN.unpack_from(batch, position + index * _RUN.size) for index in range(run_count)]
        position += run_count * _RUN.size
        runs = []
        for run_size, micros, first, prefix_length in heads:
            prefix = batch[position:position + prefix_length].decode("utf-8", _TEXT_ERRORS)
            position += prefix_length
            runs.append(RecordRun(run_size, _EPOCH + micros * _MICROSECOND, prefix, first))
    except (struct.error, UnicodeDecodeError, OverflowError):
        raise FrameError("block head cut short or garbled") from None
    offsets = array("i")
    offsets.frombytes(batch[position:position + 4 * (count + 1)])
    position += 4 * (count + 1)
    if _BIG_ENDIAN:
        offsets.byteswap()
    if len(offsets) != count + 1 or offsets[0] != 0 or position + offsets[-1] != len(batch):
        raise FrameError("batch lengths do not add up")
    data = pa.py_buffer(batch)[position:]
    payloads = pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets), data])
    try:
        payloads.validate(full=True)
        block = RecordBlock(payloads, runs)
    except (pa.ArrowInvalid, ValueError):
        raise FrameError("block offsets or runs do not add up") from None
    return tenant, source, None if source_id == _NO_SOURCE_ID else int(source_id), block
