"""Files and folders of the data home, readable by their owner only.

The data home holds the case database, generated secrets, raw records and the event lake: it is
created 0700 and the files the case API creates in it 0600, from their first byte.
"""

from __future__ import annotations

import os
from pathlib import Path


def ensure_private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (0700), created with its parents if missing.

    An existing directory is tightened too: it is the data home, whatever created it first.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_private_file(path: Path) -> Path:
    """``path`` as a file only its owner may read and write (0600), created empty if missing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    path.chmod(0o600)
    return path
