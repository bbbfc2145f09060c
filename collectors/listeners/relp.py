"""RELP, rsyslog's Reliable Event Logging Protocol, as librelp speaks it: frames, offers and responses.

Sans-IO: bytes in, frames out, so the framing rules are testable byte by byte. What the session does
with the frames (acknowledging only what is durable) lives in `collectors.listeners.streams`.

A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF` (librelp's doc/relp.md and src/relpframe.c):
TXNR 1-9 digits, COMMAND 1-32 letters, DATALEN 1-9 digits and, when it is not 0, a space and exactly
DATALEN octets of data; every frame ends with LF, which catches framing errors. A server answers a
command with `TXNR rsp DATALEN DATA` where DATA starts `200 OK` or `500 <text>` (librelp reads at most
80 characters of text and no LF). The client opens with `open` and its offers (`relp_version=0`,
`commands=syslog`, `relp_software=...`, one per line), sends `syslog` commands and ends with `close`;
a server that goes away first sends the hint `0 serverclose 0`.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.errors import CollectorError

PROTOCOL_VERSION = 0  # what librelp speaks (RELP_CURR_PROTOCOL_VERSION); the "1" of the spec never shipped
MAX_TXNR = 999_999_999  # TXNR is latched here and wraps to 1
DEFAULT_MAX_DATA = 128 * 1024  # librelp's default maximum DATALEN
_MAX_TEXT = 80  # librelp reads no more of a response's human-readable text
SOFTWARE = "citysoc,0.1.0,https://github.com/citysoc/citysoc"


class RelpProtocolError(CollectorError):
    """The peer broke RELP framing or sequencing; the session is aborted (RELP's own rule: an errored
    connection is closed, never repaired, and the client's unacknowledged frames are resent on its next
    session)."""


@dataclass(frozen=True, slots=True)
class RelpFrame:
    """One command. `size` is DATALEN as sent; `data` holds at most the parser's `max_data` of it."""

    txnr: int
    command: str
    data: bytes
    size: int

    @property
    def cut(self) -> bool:
        return self.size > len(self.data)


class RelpParser:
    """Turns a session's bytes into frames. Holds at most one header and `max_data` bytes of one frame:
    a frame announcing more keeps its first `max_data` bytes (the frame comes out `cut`), the rest is
    read and discarded, so the session stays in step and the sender gets an answer."""

    _HEADER, _DATA, _TRAILER = range(3)

    def __init__(self, *, max_data: int = DEFAULT_MAX_DATA) -> None:
        self.max_data = max_data
        self._state = self._HEADER
        self._fields: list[bytearray] = [bytearray()]  # TXNR, COMMAND, DATALEN as they arrive
        self._data = bytearray()
        self._remaining = 0
        self._frame: tuple[int, str, int] | None = None

    def feed(self, chunk: bytes) -> list[RelpFrame]:
        frames: list[RelpFrame] = []
        position, length = 0, len(chunk)
        while position < length:
            if self._state == self._HEADER:
                position = self._read_header(chunk, position)
            elif self._state == self._DATA:
                taken = min(self._remaining, length - position)
                room = self.max_data - len(self._data)
                if room > 0:
                    self._data += chunk[position:position + min(room, taken)]
                self._remaining -= taken
                position += taken
                if self._remaining == 0:
                    self._state = self._TRAILER
            else:
                if chunk[position] != 10:
                    raise RelpProtocolError(f"frame does not end with LF (got byte {chunk[position]:#04x})")
                position += 1
                frames.append(self._finish())
        return frames

    def _read_header(self, chunk: bytes, position: int) -> int:
        """Consume header bytes; switches to data (or trailer) once DATALEN is complete."""
        fields = self._fields
        while position < len(chunk):
            byte = chunk[position]
            position += 1
            current = fields[-1]
            if byte == 32 and current:
                if len(fields) < 3:
                    fields.append(bytearray())
                    continue
                self._start_data()  # SP after DATALEN: data follows
                return position
            if byte == 10 and len(fields) == 3 and current:
                self._start_data()
                if self._remaining:
                    raise RelpProtocolError("DATALEN is not 0 but no data follows")
                return position - 1  # the LF is the trailer
            if len(fields) == 2:
                if not (65 <= byte <= 90 or 97 <= byte <= 122) or len(current) == 32:
                    raise RelpProtocolError("COMMAND must be 1 to 32 letters")
            elif not 48 <= byte <= 57 or len(current) == 9:
                what = "TXNR" if len(fields) == 1 else "DATALEN"
                raise RelpProtocolError(f"{what} must be 1 to 9 digits")
            current.append(byte)
        return position

    def _start_data(self) -> None:
        txnr, command, size = int(self._fields[0]), self._fields[1].decode("ascii"), int(self._fields[2])
        self._fields = [bytearray()]
        self._frame = (txnr, command, size)
        self._remaining = size
        self._state = self._DATA if size else self._TRAILER

    def _finish(self) -> RelpFrame:
        assert self._frame is not None
        txnr, command, size = self._frame
        frame = RelpFrame(txnr, command, bytes(self._data), size)
        self._data.clear()
        self._frame = None
        self._state = self._HEADER
        return frame


def next_txnr(txnr: int) -> int:
    return 1 if txnr >= MAX_TXNR else txnr + 1


def parse_offers(data: bytes) -> dict[str, list[str]]:
    """`open` data: one offer per line, `name=value,value`; a name without values maps to []."""
    offers: dict[str, list[str]] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        name, _, values = line.partition("=")
        offers[name[:32]] = [value for value in values.split(",") if value]
    return offers


def encode_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


def ok(txnr: int, data: bytes = b"") -> bytes:
    """`rsp 200 OK`, with optional command data on the lines after it."""
    return encode_frame(txnr, "rsp", b"200 OK" + (b"\n" + data if data else b""))


def error(txnr: int, text: str) -> bytes:
    """`rsp 500 <text>`: one line of at most 80 characters, as librelp reads it."""
    line = " ".join(text.split())[:_MAX_TEXT].encode("utf-8", "replace")
    return encode_frame(txnr, "rsp", b"500 " + line)


def open_response(txnr: int, offers: dict[str, list[str]]) -> tuple[bytes, bool]:
    """The answer to `open` and whether the session is open: our offers, or 500 when the client does not
    offer what RELP needs."""
    if not offers.get("relp_version"):
        return error(txnr, "no relp_version offered"), False
    if "syslog" not in offers.get("commands", []):
        return error(txnr, "required command not supported by client"), False  # librelp's wording
    return ok(txnr, f"relp_version={PROTOCOL_VERSION}\nrelp_software={SOFTWARE}\ncommands=syslog".encode()), True


def close_response(txnr: int) -> bytes:
    return encode_frame(txnr, "rsp")  # librelp answers `close` with an empty rsp


SERVER_CLOSE = encode_frame(0, "serverclose")
