"""`soc rules test --watch`: a real process keeps its Spark session and re-runs only the saved rule's cases."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.rules.conftest import write_rule

pytestmark = pytest.mark.slow

GOOD = """\
examples:
  - description: a failed password fires
    match: true
    ecs: {process.name: sshd, system.auth.ssh.event: Failed}
  - description: an accepted login stays quiet
    match: false
    ecs: {process.name: sshd, system.auth.ssh.event: Accepted}
"""


class Watch:
    """`soc rules test --watch FOLDER` with its stdout read line by line on a thread."""

    def __init__(self, folder: Path, home: Path) -> None:
        env = {**os.environ, "SOC_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.process = subprocess.Popen([sys.executable, "-m", "citysoc.cli", "rules", "test", "--watch", str(folder)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_report(self, timeout: float = 240) -> list[str]:
        """The lines of the next report, up to its `rules:` summary."""
        deadline = time.monotonic() + timeout
        report: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "the watch ended early"
                continue
            report.append(line)
            if line.startswith("rules:"):
                return report
        raise AssertionError(f"no report within {timeout} s; got {report}")


def test_a_saved_rule_reruns_alone_and_ctrl_c_ends_the_watch(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rule(folder / "linux", "first", evidence=GOOD)
    second = write_rule(folder / "linux", "second", evidence=GOOD)
    watch = Watch(folder, tmp_path / "home")
    try:
        first_report = watch.next_report()
        assert first_report[-1].startswith("rules: 2 passed, 0 failed"), first_report
        evidence = second.with_name("second.evidence.yaml")
        evidence.write_text(GOOD.replace("match: false", "match: true"))  # now wrong: the accepted login is quiet
        rerun = watch.next_report()
        assert rerun[-1].startswith("rules: 0 passed, 1 failed") and "2 case(s)" in rerun[-1], rerun
        assert any("Test Rule second" in line for line in rerun)
        assert not any("Test Rule first" in line for line in rerun)
        assert any(f"{evidence}:5" in line and "expected match, did not match" in line for line in rerun), rerun
        second.write_text(second.read_text().replace("level: medium", "level: high"))  # the rule file itself
        still = watch.next_report()
        assert still[-1].startswith("rules: 0 passed, 1 failed"), still
        evidence.write_text(GOOD)
        fixed = watch.next_report()
        assert fixed[-1].startswith("rules: 1 passed, 0 failed"), fixed
    finally:
        watch.process.send_signal(signal.SIGINT)
        code = watch.process.wait(timeout=60)
    assert code == 0  # the last report holds
