"""Small file-system steps that survive a crash: what the spool and the Parquet lake build their ordering on.

A `write` (or `rename`) is visible to other processes at once and survives kill -9, because it sits in the
kernel's page cache; it survives power loss only once it is fsync'ed, and a new or renamed directory entry
only once its directory is fsync'ed. Every step here says which of the two it guarantees.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (files created, renamed or removed in it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's content durable (any descriptor of the inode flushes its pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(directory: Path) -> None:
    """Create the directory and its missing parents, each entry durable before the caller relies on it."""
    missing: list[Path] = []
    probe = directory
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a crash at any instant leaves the old content or the new, whole."""
    partial = path.with_name(f".{path.name}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)  # the content is on disk before the name points at it
    finally:
        os.close(fd)
    os.replace(partial, path)
    fsync_dir(path.parent)
