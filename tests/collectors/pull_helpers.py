"""The pull tests' harness: a real spool, checkpoints and dead letters in a temporary folder, a runner with
recorded rate-limit pauses, and a crash run (a child process that SIGKILLs itself after N spool appends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from citysoc.deadletter import DeadLetterStore
from collectors.pull import PullCheckpoints, PullRunner, PullSource
from collectors.spool import Spool

ROOT = Path(__file__).resolve().parents[2]


class Harness:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.spool_dir, self.checkpoint_dir, self.dead_dir = tmp / "spool", tmp / "checkpoints", tmp / "dead"
        self.spool = Spool(self.spool_dir)
        self.sleeps: list[float] = []
        self.dead = DeadLetterStore(self.dead_dir)

    def runner(self, source: PullSource) -> PullRunner:
        return PullRunner(self.spool, PullCheckpoints(self.checkpoint_dir), self.dead, lambda: [source],
                          environ=self.env, sleep=self.sleeps.append)

    def payloads(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.payload) for batch in self.spool.pending() for record in batch.records]

    def crash_once(self, source: PullSource, *, kill_after: int) -> int:
        """Run the source's pull in a child that SIGKILLs itself after `kill_after` appends; its exit code."""
        self.spool.close()
        spec = self.tmp / "source.json"
        spec.write_text(json.dumps(asdict(source)))
        child = subprocess.run([sys.executable, "-m", "tests.collectors.pull_worker", str(spec), str(self.spool_dir),
                                str(self.checkpoint_dir), str(self.dead_dir), str(kill_after)], cwd=ROOT,
                               env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                               timeout=120)
        self.spool = Spool(self.spool_dir)
        return child.returncode


@dataclass(frozen=True)
class UnreachableEventHub:
    """An `azure-eventhub` source reading its connection string from `$HUB`, and that connection string: the
    emulator form (plain AMQP) to a local port nothing listens on."""

    source: PullSource
    connection: str
