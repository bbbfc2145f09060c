"""TEMPORARY: a minimal real spool with the interface of the contract's `collectors.spool.Spool`.

Used by the intake tests only until `collectors/spool.py` is merged; then delete this file (and the two
places that name it in `tests/collectors/intake_helpers.py`). Batches are fsync'ed JSON lines in one
file; the committed position is a byte offset in a second file. Another process may read `pending()`
while the collector appends (a torn last line is simply not yet pending).

`python -m tests.collectors.spool_for_tests collect ...` runs `soc collect` with this spool.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from collectors.intake import SpoolFullError
from collectors.records import RawRecord


@dataclass(frozen=True, order=True)
class SpoolPosition:
    offset: int  # end of the batch in the log file


@dataclass(frozen=True)
class SpoolBatch:
    tenant: str
    source: str
    records: tuple[RawRecord, ...]
    position: SpoolPosition


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 2 * 1024**3, segment_bytes: int = 64 * 1024**2) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._log = directory / "batches.jsonl"
        self._checkpoint = directory / "committed"
        self._lock = threading.Lock()

    def append(self, *, tenant: str, source: str, records: Sequence[RawRecord]) -> None:
        line = orjson.dumps({"tenant": tenant, "source": source, "records": [
            {"payload": base64.b64encode(r.payload).decode(), "origin": r.origin, "received": r.received.isoformat()}
            for r in records]}) + b"\n"
        with self._lock:
            if self.pending_bytes() + len(line) > self.max_bytes:
                raise SpoolFullError(f"spool full ({self.max_bytes} bytes)", where=str(self.directory))
            with open(self._log, "ab") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())

    def pending(self, *, limit: int | None = None) -> Iterator[SpoolBatch]:
        if not self._log.exists():
            return
        with open(self._log, "rb") as file:
            file.seek(self._committed())
            for count, line in enumerate(file):
                if not line.endswith(b"\n") or (limit is not None and count >= limit):
                    return
                batch = orjson.loads(line)
                yield SpoolBatch(batch["tenant"], batch["source"], tuple(
                    RawRecord(base64.b64decode(r["payload"]), r["origin"], datetime.fromisoformat(r["received"]))
                    for r in batch["records"]), SpoolPosition(file.tell()))

    def commit(self, position: SpoolPosition) -> None:
        staged = self._checkpoint.with_suffix(".new")
        staged.write_text(str(position.offset))
        os.replace(staged, self._checkpoint)  # readers see the old position or the new one, never half

    def pending_bytes(self) -> int:
        size = self._log.stat().st_size if self._log.exists() else 0
        return size - self._committed()

    def _committed(self) -> int:
        return int(self._checkpoint.read_text()) if self._checkpoint.exists() else 0


if __name__ == "__main__":
    import citysoc.wiring
    from citysoc.cli import main

    citysoc.wiring.Spool = Spool  # type: ignore[attr-defined]
    main()
