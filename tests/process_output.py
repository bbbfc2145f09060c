"""A child process's output, read line by line on a thread as it comes, for tests that drive real processes."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from typing import IO


class Output:
    """A process's output lines, read as they come."""

    def __init__(self, process: subprocess.Popen[str], stream: IO[str] | None = None) -> None:
        """Reads `stream` (default: the process's stdout)."""
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = process
        source = stream if stream is not None else process.stdout
        assert source is not None
        threading.Thread(target=self._read, args=(source,), daemon=True).start()

    def _read(self, source: IO[str]) -> None:
        for line in source:
            self.lines.put(line)

    def mark(self) -> int:
        """A position in the output: `wait_for(..., since=mark)` looks only at lines after it."""
        return len(self.seen)

    def wait_for(self, pattern: str, timeout: float = 240, since: int = 0) -> re.Match[str]:
        """The first line at or after `since` that matches (parts start side by side: their lines interleave)."""
        for line in self.seen[since:]:
            if found := re.search(pattern, line):
                return found
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.seen)
                continue
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(self.seen)}")

    def rest(self) -> str:
        remaining = "".join(self.seen)
        while not self.lines.empty():
            remaining += self.lines.get()
        return remaining
