"""A process that kills itself with SIGKILL at one chosen instant of a store write or compaction.

    python -m tests.store.crash_child <events_dir> <instant>

The store's own functions run for real; the instant is chosen by wrapping one of them so that the process
dies (SIGKILL: no cleanup, no flush, no `finally`) just before or after it. The parent test then checks what
a reader and the next writer find.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from citysoc.store import ParquetEventStore, journal
from tests.store.lake_helpers import DATASET, events

WRITE_ROWS, WRITE_DAYS = 3000, 3  # one table, three day files
SMALL_FILES, SMALL_ROWS = 10, 200  # compaction input: ten small files in one partition


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_before(owner: Any, name: str) -> None:
    def dying(*args: Any, **kwargs: Any) -> Any:
        die()

    setattr(owner, name, dying)


def kill_after_first(owner: Any, name: str) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        die()
        return result

    setattr(owner, name, dying)


def main(events_dir: Path, instant: str) -> None:
    store = ParquetEventStore(events_dir)
    compacting = instant.startswith("compact")
    if compacting:
        for number in range(SMALL_FILES):
            store.write_table(tenant="council", dataset=DATASET,
                              table=events(SMALL_ROWS, start=number * SMALL_ROWS))
    if instant in ("staged", "compact-staged"):
        kill_before(journal, "record")  # files written and fsync'ed, nothing committed
    elif instant == "committed":
        kill_before(journal, "complete")  # ids claimed and files journalled, no file renamed yet
    elif instant in ("renamed-one", "compact-renamed"):
        kill_after_first(Path, "rename")  # one file has its final name, the rest do not
    elif instant == "compact-unlinked-one":
        kill_after_first(Path, "unlink")  # the merged file is in place, one old file removed, the others not
    elif instant == "swapped":
        kill_before(journal, "forget")  # every file in place, the journal not yet cleared
    else:
        raise SystemExit(f"unknown instant {instant!r}")
    if compacting:
        store.compact(min_files=4)
    else:
        store.write_table(tenant="council", dataset=DATASET, table=events(WRITE_ROWS, days=WRITE_DAYS))
    raise SystemExit("the chosen instant never came")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
