"""Syslog over a byte stream (TCP, TLS): RFC 6587 framing, decided per connection, with a size cap.

RFC 6587 knows two framings and a sender uses one per connection: octet-counting (`MSG-LEN SP MSG`,
what rsyslog's `TCP_Framing="octet-counted"` and `logger --octet-count` send) and non-transparent
framing (messages end with LF, what most senders do). A syslog message starts with `<` and never with
a digit, so the first byte of a connection tells them apart.

The framer is sans-IO (bytes in, messages out) so it can be tested byte by byte. Whatever the input,
it holds at most `max_bytes` of one message plus a frame header: a longer message keeps its first
`max_bytes` and comes out marked as cut (`Message.cut`) once its end is known; the rest is discarded
as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from collectors.errors import CollectorError
from collectors.records import binary_column

Framing = Literal["octet-counting", "non-transparent"]

# MSG-LEN of a frame within any sane limit has far fewer digits; more is garbage, not a long message.
_MAX_LENGTH_DIGITS = 10
_LF = 10
_EMPTY = pa.array([], pa.binary())


class FramingError(CollectorError):
    """The stream breaks its framing (an octet count that is not a number); the connection is closed,
    because nothing after the error can be trusted to start a message."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message without its framing. `cut`: it was `size` bytes long and only the first part is kept."""

    payload: bytes
    size: int
    cut: bool = False


class SyslogFramer:
    """Frames one connection's bytes into messages (see the module doc)."""

    def __init__(self, *, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.framing: Framing | None = None
        self._buffer = bytearray()  # non-transparent: the start of the current line (at most max_bytes)
        self._discarding = 0  # bytes of an over-long message seen past the kept part
        # octet-counting state: digits of the length being read, then the bytes still to come
        self._digits = bytearray()
        self._remaining: int | None = None
        self._size = 0

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by `data` (none, one or many), in order."""
        if self.framing is None:
            data = data.lstrip(b"\r\n")  # stray line ends before the first message say nothing
            if not data:
                return []
            self.framing = "octet-counting" if data[:1].isdigit() else "non-transparent"
        if self.framing == "octet-counting":
            return self._feed_counted(data)
        return self._feed_lines(data)

    def feed_column(self, data: bytes) -> pa.Array | None:
        """`feed`'s fast path for a newline-framed connection: the payloads of the messages `data` completes as
        one Arrow binary array, with no object per message (numpy finds the line ends, one `bytes.replace`
        drops them: the array's data is the read without its LFs); None, having consumed nothing, when `data`
        completes or starts a message over the size limit, or the connection is octet-counted or new (then
        `feed(data)` gives them as `Message`s)."""
        if self.framing != "non-transparent" or self._discarding:
            return None  # (a connection's first read decides its framing in `feed`)
        last = data.rfind(b"\n")
        if last < 0:
            if len(self._buffer) + len(data) > self.max_bytes:
                return None
            self._buffer += data
            return _EMPTY
        if len(data) - last - 1 > self.max_bytes:
            return None
        text: bytes | bytearray = data
        if self._buffer:
            last += len(self._buffer)
            text = self._buffer + data
        if b"\r" in text:  # CRLF senders (the CR belongs to the line end) and stray CRs: line by line
            lines = text[:last].split(b"\n")
            if max(map(len, lines)) > self.max_bytes:
                return None
            self._buffer[:] = text[last + 1:]
            return binary_column([payload for line in lines if (payload := line[:-1] if line.endswith(b"\r")
                                                                 else line)])
        ends = np.flatnonzero(np.frombuffer(text, np.uint8, last + 1) == _LF)
        ends -= np.arange(len(ends))  # each line's end in the text without its LFs
        lengths = np.diff(ends, prepend=0)
        if int(lengths.max()) > self.max_bytes:
            return None
        self._buffer[:] = text[last + 1:]
        if not lengths.all():
            ends = ends[lengths > 0]  # blank lines are no messages: their ends repeat the previous one
        offsets = np.zeros(len(ends) + 1, np.int32)
        offsets[1:] = ends
        payloads = pa.py_buffer(text.replace(b"\n", b""))[:int(offsets[-1])]  # (past it: the next message's start)
        return pa.Array.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), payloads])

    def finish(self) -> list[Message]:
        """At the end of the stream: a last line without its LF, or an octet-counted message cut short."""
        if self.framing == "non-transparent" and (self._buffer or self._discarding):
            size = len(self._buffer) + self._discarding
            message = Message(bytes(self._buffer).rstrip(b"\r"), size, cut=self._discarding > 0)
            self._buffer.clear()
            self._discarding = 0
            return [message] if message.payload or message.cut else []
        if self.framing == "octet-counting" and self._remaining is not None:
            kept = bytes(self._buffer)
            self._buffer.clear()
            self._remaining = None
            return [Message(kept, self._size, cut=True)]
        return []

    # --- non-transparent framing ----------------------------------------------------------------------

    def _feed_lines(self, data: bytes) -> list[Message]:
        last = data.rfind(b"\n")
        if last < 0:
            self._keep(data, 0, len(data))
            return []
        first = data.find(b"\n")
        messages = self._end_lines(data, 0, first)  # the line whose start the buffer may hold
        if first < last:  # whole lines in between: the buffer is empty, so they need no state
            lines = data[first + 1:last].split(b"\n")
            if max(map(len, lines)) <= self.max_bytes:  # the usual chunk: one pass, no line cut
                messages += [Message(line[:-1] if line.endswith(b"\r") else line, len(line))
                             for line in lines if line and line != b"\r"]
            else:
                messages += self._end_lines(data, first + 1, last)
        self._keep(data, last + 1, len(data))
        return messages

    def _end_lines(self, data: bytes, start: int, last: int) -> list[Message]:
        """The messages of the lines of `data` from `start` to the LF at `last`, one by one."""
        messages: list[Message] = []
        while True:
            end = data.find(b"\n", start, last + 1)
            if end < 0:
                return messages
            self._keep(data, start, end)
            size = len(self._buffer) + self._discarding
            payload = bytes(self._buffer)
            if payload.endswith(b"\r"):  # CRLF senders: the CR belongs to the line end
                payload = payload[:-1]
            if payload or self._discarding:
                messages.append(Message(payload, size, cut=self._discarding > 0))
            self._buffer.clear()
            self._discarding = 0
            start = end + 1

    def _keep(self, data: bytes, start: int, end: int) -> None:
        room = self.max_bytes - len(self._buffer)
        taken = min(room, end - start)
        if taken > 0:
            self._buffer += data[start:start + taken]
        self._discarding += end - start - max(taken, 0)

    # --- octet-counting -------------------------------------------------------------------------------

    def _feed_counted(self, data: bytes) -> list[Message]:
        messages: list[Message] = []
        position, length = 0, len(data)
        while position < length:
            if self._remaining is None:
                position = self._read_length(data, position)
                if self._remaining == 0:
                    self._remaining = None  # "0 " is a frame with nothing in it
                continue
            taken = min(self._remaining, length - position)
            room = self.max_bytes - len(self._buffer)
            if room > 0:
                self._buffer += data[position:position + min(room, taken)]
            self._remaining -= taken
            position += taken
            if self._remaining == 0:
                messages.append(Message(bytes(self._buffer), self._size, cut=self._size > self.max_bytes))
                self._buffer.clear()
                self._remaining = None
        return messages

    def _read_length(self, data: bytes, position: int) -> int:
        """Consume MSG-LEN digits up to the SP; returns the position after what was consumed."""
        length = len(data)
        while position < length:
            byte = data[position]
            position += 1
            if 48 <= byte <= 57:
                self._digits.append(byte)
                if len(self._digits) > _MAX_LENGTH_DIGITS:
                    raise FramingError(f"octet count longer than {_MAX_LENGTH_DIGITS} digits")
            elif byte == 32 and self._digits:
                self._size = int(self._digits)
                self._digits.clear()
                self._remaining = self._size
                return position
            elif byte in (10, 13) and not self._digits:
                continue  # a line end between frames: some senders add one
            else:
                raise FramingError(f"expected an octet count (digits then a space), got byte {byte:#04x}")
        return position
