"""File helpers shared by the parsers: gzip detection by content, not by name; line iteration."""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from collectors.redact import redact_text

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes, whatever its suffix says."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_maybe_gzip(path: Path) -> BinaryIO:
    """The file opened for binary reading, transparently decompressed when it is gzip."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@dataclass(frozen=True)
class TextLine:
    """One non-blank line of a text log, redacted, with where it came from.

    `occurrence` counts identical (redacted) lines so far in the file, starting at 1: it goes into
    the event id, so a re-read of the file gives the same ids while two genuinely repeated lines are
    both kept.
    """

    lineno: int
    text: str
    occurrence: int
    origin: str


class LineReader:
    """Reads a (possibly gzipped) text log line by line; counts blank lines in `skipped`."""

    def __init__(self) -> None:
        self.skipped = 0

    def lines(self, path: Path) -> Iterator[TextLine]:
        seen: Counter[str] = Counter()
        with open_maybe_gzip(path) as handle:
            for lineno, raw in enumerate(handle, start=1):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text.strip():
                    self.skipped += 1
                    continue
                line = redact_text(text)  # before anything else: no secret reaches an id or the store
                seen[line] += 1
                yield TextLine(lineno, line, seen[line], f"{path}:{lineno}")
