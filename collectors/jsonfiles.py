"""JSON files cut into records in bounded memory: an S3 object `{"Records": [...]}`, an array, NDJSON, or
one (pretty-printed) document.

The shape is decided from the file's start:
- `[` is an array; `{"Records": [` (whitespace allowed) is CloudTrail's S3 object: both are cut into their
  elements, one `RawRecord` each (`file:record[i]`), never holding more than a chunk and one element;
- otherwise, when one of the first lines is a JSON object on its own, the file is NDJSON: one record per
  line (`file:line`), so a broken first line costs that line only;
- otherwise a document starting with `{` is one record (`file:1`); anything else is not JSON: one
  `ReadProblem` record for the whole file.

Cutting an array: an element ends at a closing bracket followed by `,` or `]`; the candidate is accepted
when the bytes from the element's start to it parse as JSON (a JSON value has exactly one end, so a parse
that succeeds found it). Brackets inside strings or nested arrays fail that test and the next candidate is
tried; after a few failures (or for an element nested deeper than the parser allows) a byte-level scanner
finds the end instead (linear, strings and escapes honoured). An element over `max_record_bytes` is
skipped by the scanner while it streams, and handed over as its beginning with its size and SHA-256; an
element that never ends (a truncated file) becomes one `ReadProblem` record, the last.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson

from collectors.files import DEFAULT_LIMITS, ReadError, ReadLimits, read_chunks, split_lines
from collectors.records import RawRecord, ReadProblem

NOT_JSON = "not JSON (expected a {\"Records\": [...]} object, an array or NDJSON)"
_RECORDS_OPENING = re.compile(rb'\A\s*\{\s*"Records"\s*:\s*\[')
_WHITESPACE = re.compile(rb"\s*")
_SCALAR_END = re.compile(rb"[,\]]")
_STRUCTURE = re.compile(rb'["\[\]{}]')
_STRING_END = re.compile(rb'["\\]')
_CLOSERS = {ord("{"): re.compile(rb"\}\s*(?=[,\]])"), ord("["): re.compile(rb"\]\s*(?=[,\]])")}
_PROBE_BYTES = 64 * 1024
_PROBE_LINES = 16
_CANDIDATE_TRIES = 8


class _Buffer:
    """The bytes of a chunk stream not consumed yet, refilled on demand."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.data = b""
        self.error: ReadError | None = None
        self.ended = False

    def more(self) -> bool:
        """Append the next chunk; False at the end of the stream (or after a read error)."""
        if self.ended:
            return False
        try:
            self.data += next(self.chunks)
            return True
        except StopIteration:
            self.ended = True
        except ReadError as exc:
            self.error, self.ended = exc, True
        return False

    def skip_whitespace(self, position: int) -> int:
        while True:
            matched = _WHITESPACE.match(self.data, position)
            position = matched.end() if matched else position
            if position < len(self.data) or not self.more():
                return position

    def rest(self) -> Iterator[bytes]:
        """What is buffered, then the chunks not read yet (re-raising a read error where it happened)."""
        yield self.data
        if self.error is not None:
            raise self.error
        if not self.ended:
            yield from self.chunks

    def cut_off(self) -> str:
        return f" ({self.error.reason})" if self.error else " (truncated file?)"


class _Scanner:
    """Finds where a JSON value ends, chunk after chunk: linear, and it needs no more than the chunk at hand."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, data: bytes, position: int) -> int:
        """The index just past the value's end in `data`, or -1 when the value goes on past `data`."""
        while position < len(data):
            if self.escaped:
                self.escaped, position = False, position + 1
                continue
            pattern = _STRING_END if self.in_string else _STRUCTURE
            found = pattern.search(data, position)
            if not found:
                return -1
            position, token = found.end(), found.group()
            if self.in_string:
                self.escaped = token == b"\\"
                self.in_string = self.escaped
                if not self.in_string and self.depth == 0:
                    return position
            elif token == b'"':
                self.in_string = True
            elif token in (b"{", b"["):
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth <= 0:
                    return position
        return -1


def _too_long(prefix: bytes, size: int, digest: str, limits: ReadLimits) -> ReadProblem:
    return ReadProblem(f"record of {size} bytes is over the {limits.max_record_bytes}-byte limit: its first "
                       f"{len(prefix)} bytes are kept", size=size, sha256=digest)


def _element(buffer: _Buffer, start: int, limits: ReadLimits) -> tuple[int, bytes, ReadProblem | None]:
    """(end, payload, problem) of the array element at `start`; end is -1 when the array ends inside it.

    An element over the size limit is skipped as it streams: `buffer.data` then holds what follows it.
    """
    opener = buffer.data[start]
    closer = _CLOSERS.get(opener)
    search_from, tries = start, 0
    while closer is not None and tries < _CANDIDATE_TRIES:
        found = closer.search(buffer.data, search_from)
        if found is None:
            if len(buffer.data) - start > limits.max_record_bytes or not buffer.more():
                break
            continue
        end = found.start() + 1
        try:
            orjson.loads(buffer.data[start:end])
        except orjson.JSONDecodeError:
            search_from, tries = found.end(), tries + 1
            continue
        payload = buffer.data[start:end]
        if len(payload) <= limits.max_record_bytes:
            return end, payload, None
        prefix = payload[: limits.kept_prefix_bytes]
        return end, prefix, _too_long(prefix, len(payload), hashlib.sha256(payload).hexdigest(), limits)
    if closer is None and opener != ord('"'):  # a number or literal (not a record: the parser will say so)
        while (stop := _SCALAR_END.search(buffer.data, start)) is None:
            if len(buffer.data) - start > limits.max_record_bytes or not buffer.more():
                return -1, buffer.data[start: start + limits.kept_prefix_bytes], ReadProblem(
                    "not JSON: the array ends inside a value" + buffer.cut_off())
        return stop.start(), buffer.data[start: stop.start()].rstrip(), None
    scanner, position = _Scanner(), start
    while True:
        end = scanner.feed(buffer.data, position)
        if end >= 0:
            payload = buffer.data[start:end]
            if len(payload) <= limits.max_record_bytes:
                return end, payload, None
            return end, payload[: limits.kept_prefix_bytes], _too_long(
                payload[: limits.kept_prefix_bytes], len(payload), hashlib.sha256(payload).hexdigest(), limits)
        if len(buffer.data) - start > limits.max_record_bytes:
            return _skip_long_element(buffer, start, scanner, limits)
        position = len(buffer.data)
        if not buffer.more():
            return -1, buffer.data[start: start + limits.kept_prefix_bytes], ReadProblem(
                "not JSON: the array ends inside this record" + buffer.cut_off())


def _skip_long_element(buffer: _Buffer, start: int, scanner: _Scanner,
                       limits: ReadLimits) -> tuple[int, bytes, ReadProblem | None]:
    """Stream past an over-long element (its scanner state already covers `buffer.data[start:]`)."""
    seen = buffer.data[start:]
    prefix, size, digest = seen[: limits.kept_prefix_bytes], len(seen), hashlib.sha256(seen)
    buffer.data = b""
    while buffer.more():
        end = scanner.feed(buffer.data, 0)
        part = buffer.data if end < 0 else buffer.data[:end]
        size += len(part)
        digest.update(part)
        if end >= 0:
            return end, prefix, _too_long(prefix, size, digest.hexdigest(), limits)
        buffer.data = b""
    return -1, prefix, ReadProblem(f"not JSON: the array ends inside a record of {size}+ bytes"
                                   + buffer.cut_off(), size=size, sha256=digest.hexdigest())


def _array_records(buffer: _Buffer, position: int, *, name: str, received: datetime,
                   limits: ReadLimits) -> Iterator[RawRecord]:
    index = 0
    while True:
        position = buffer.skip_whitespace(position)
        if position >= len(buffer.data):
            yield RawRecord(b"", f"{name}:record[{index}]", received, ReadProblem(
                f"not JSON: the array ends after {index} record(s) without its closing bracket" + buffer.cut_off()))
            return
        byte = buffer.data[position]
        if byte == ord("]"):
            break
        if byte == ord(","):
            position += 1
            continue
        end, payload, problem = _element(buffer, position, limits)
        yield RawRecord(payload, f"{name}:record[{index}]", received, problem)
        if end < 0:
            return
        index += 1
        if end > limits.chunk_bytes:  # drop what was consumed, about once a chunk: copying stays linear
            buffer.data, position = buffer.data[end:], 0
        else:
            position = end
    while buffer.more():  # the rest (`}` of an S3 object) is read only to notice a truncated or corrupt stream
        buffer.data = b""
    if buffer.error is not None:
        yield RawRecord(b"", f"{name}:record[{index}]", received, ReadProblem(buffer.error.reason))


def _looks_like_ndjson(data: bytes) -> bool:
    """True when one of the first complete lines is a JSON object on its own."""
    lines = data.splitlines()
    if lines and not data.endswith((b"\n", b"\r")):
        lines.pop()  # incomplete
    candidates = [line for line in lines if line.strip()][:_PROBE_LINES]
    if not candidates:  # the first line is longer than the probe: one-line JSON is what NDJSON writers make
        return data.lstrip().startswith(b"{")
    for line in candidates:
        try:
            if isinstance(orjson.loads(line), dict):
                return True
        except orjson.JSONDecodeError:
            continue
    return False


def split_json(chunks: Iterator[bytes], *, name: str, received: datetime,
               limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[RawRecord]:
    """Cut a JSON byte stream into records (see the module docstring)."""
    buffer = _Buffer(chunks)
    while len(buffer.data) < _PROBE_BYTES and buffer.more():  # enough to see the opening and the first lines
        pass
    buffer.data = buffer.data.removeprefix(b"\xef\xbb\xbf")
    start = buffer.skip_whitespace(0)
    if start >= len(buffer.data):
        if buffer.error:
            yield RawRecord(b"", name, received, ReadProblem(buffer.error.reason))
        return
    opening = _RECORDS_OPENING.match(buffer.data)
    if opening or buffer.data[start] == ord("["):
        position = opening.end() if opening else start + 1
        yield from _array_records(buffer, position, name=name, received=received, limits=limits)
    elif _looks_like_ndjson(buffer.data):
        yield from split_lines(buffer.rest(), name=name, received=received, limits=limits)
    elif buffer.data[start] == ord("{"):
        yield from _one_document(buffer, start, name=name, received=received, limits=limits)
    else:
        yield RawRecord(buffer.data[: limits.kept_prefix_bytes], name, received, ReadProblem(NOT_JSON))


def _one_document(buffer: _Buffer, start: int, *, name: str, received: datetime,
                  limits: ReadLimits) -> Iterator[RawRecord]:
    while len(buffer.data) - start <= limits.max_record_bytes and buffer.more():
        pass
    document = buffer.data[start:].rstrip()
    if len(document) > limits.max_record_bytes:
        yield RawRecord(document[: limits.kept_prefix_bytes], name, received, ReadProblem(
            f"a multi-line JSON document over {limits.max_record_bytes} bytes that is neither an array nor "
            "NDJSON: not read"))
        return
    try:
        orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        yield RawRecord(document, name, received, ReadProblem(
            f"{NOT_JSON}: {exc}" + (f" ({buffer.error.reason})" if buffer.error else "")))
        return
    yield RawRecord(document, f"{name}:1", received)
    if buffer.error is not None:
        yield RawRecord(b"", name, received, ReadProblem(buffer.error.reason))


def read_json_records(path: Path, *, received: datetime, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[RawRecord]:
    """The records of a (possibly gzipped) JSON file, in bounded memory."""
    yield from split_json(read_chunks(path, limits), name=str(path), received=received, limits=limits)
