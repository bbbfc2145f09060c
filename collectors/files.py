"""File helpers shared by the parsers: gzip detection by content, not by name."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

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
