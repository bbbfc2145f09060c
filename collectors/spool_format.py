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
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate, pairwise

from collectors.records import RawRecord

MAGIC = b"CSP1"
HEADER = struct.Struct("<4sII")
_LENGTH = struct.Struct("<I")
_BATCH_HEAD = struct.Struct("<BHHIq")
_VERSION = 2
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
    payloads = [record.payload for record in records]
    origins = [record.origin.encode("utf-8", _TEXT_ERRORS) for record in records]
    payload_lengths = array("I", map(len, payloads))
    origin_lengths = array("I", map(len, origins))
    received = array("q", _micros(records))
    if _BIG_ENDIAN:
        for column in (payload_lengths, origin_lengths, received):
            column.byteswap()
    batch = b"".join((
        _BATCH_HEAD.pack(_VERSION, len(tenant_bytes), len(source_bytes), len(records),
                         _NO_SOURCE_ID if source_id is None else source_id),
        tenant_bytes, source_bytes,
        payload_lengths.tobytes(), origin_lengths.tobytes(), received.tobytes(),
        *payloads, *origins,
    ))
    if len(batch) > MAX_FRAME_BYTES:
        raise ValueError(f"a batch of {len(batch)} bytes does not fit one spool frame (4 GiB): append smaller batches")
    return HEADER.pack(MAGIC, len(batch), frame_checksum(len(batch), batch)) + batch


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


def decode_batch(batch: bytes) -> tuple[str, str, int | None, tuple[RawRecord, ...]]:
    """Tenant, source, source id and records of a batch whose checksum was verified."""
    try:
        version, tenant_length, source_length, count, source_id = _BATCH_HEAD.unpack_from(batch, 0)
    except struct.error:
        raise FrameError("batch head cut short") from None
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
