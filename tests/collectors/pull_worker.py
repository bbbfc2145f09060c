"""A puller process for the crash tests: polls one source into a spool and kills itself (SIGKILL) right after
the `--kill-after`-th append has returned, i.e. once that batch is durable in the spool and before its
checkpoint is written: the worst moment for a pull.

    python -m tests.collectors.pull_worker <source.json> <spool dir> <checkpoint dir> <dead-letter dir> N
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from citysoc.deadletter import DeadLetterStore
from collectors.pull import PullCheckpoints, PullRunner, PullSource
from collectors.records import RawRecord
from collectors.spool import Spool


class KillingSpool:
    def __init__(self, spool: Spool, kill_after: int) -> None:
        self.spool, self.kill_after, self.appends = spool, kill_after, 0

    def append(self, *, tenant: str, source: str, records: Sequence[RawRecord], source_id: int | None = None) -> None:
        self.spool.append(tenant=tenant, source=source, records=records, source_id=source_id)
        self.appends += 1
        if self.appends == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    source_file, spool_dir, checkpoint_dir, dead_dir, kill_after = argv
    source = PullSource(**json.loads(Path(source_file).read_text()))
    spool = Spool(Path(spool_dir))
    runner = PullRunner(KillingSpool(spool, int(kill_after)), PullCheckpoints(Path(checkpoint_dir)),
                        DeadLetterStore(Path(dead_dir)), lambda: [source])
    report = runner.poll()
    spool.close()
    print(json.dumps({"records": report.records, "failed": report.failed}))


if __name__ == "__main__":
    main(sys.argv[1:])
