"""Continuous detection survives kill -9 at any step of a cycle: restarted from its checkpoint, the alerts in the
case API are exactly those of a run that was never killed (none lost, none twice)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.schedule import load_checkpoint
from citysoc.settings import Settings
from citysoc.store import ParquetEventStore
from citysoc.wiring import case_client
from collectors.ingest import ingest_files
from correlator.engine.alerts import read_alerts
from tests.process_output import Output

TENANT = "riverside-council"
SOC = Path(sys.executable).parent / "soc"


class Detector:
    """`soc detect --every 1s` in a process group of its own (the Python process and its Spark JVM), with its
    log lines (INFO) read as they come."""

    def __init__(self, home: Path, rules: Path) -> None:
        env = {**os.environ, "SOC_HOME": str(home), "SOC_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
               "COLUMNS": "250"}
        self.process = subprocess.Popen(
            [str(SOC), "detect", "--no-own-rules", "--rules", str(rules), "--every", "1s", "--allowed-lateness",
             "5000d"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.output = Output(self.process, self.process.stderr)

    @property
    def seen(self) -> list[str]:
        return self.output.seen

    def wait_for(self, text: str, timeout: float = 180) -> None:
        self.output.wait_for(re.escape(text), timeout=timeout, since=len(self.output.seen))

    def kill(self) -> None:
        """kill -9 of the detector and its JVM, at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def arrive(home: Path, files: Sequence[Path]) -> None:
    """Files reach the lake as the collector's drainer would put them there: one write each."""
    settings = Settings(home=home)
    ingest_files(tenant=TENANT, source="aws.cloudtrail", paths=list(files),
                 store=ParquetEventStore(settings.events_dir), dead_letters=DeadLetterStore(settings.deadletter_dir))


def caught_up(home: Path, detector: Detector, timeout: float = 240) -> None:
    """Wait until the detector's checkpoint is the lake's watermark: every arrival evaluated and delivered."""
    settings = Settings(home=home)
    watermark = ParquetEventStore(settings.events_dir).arrival_watermark()
    deadline = time.monotonic() + timeout
    while load_checkpoint(settings.detect_checkpoint_file) != watermark:
        assert time.monotonic() < deadline and detector.process.poll() is None, "".join(detector.seen)
        time.sleep(0.5)


def case_api_alerts(home: Path) -> list[str]:
    with case_client(Settings(home=home), role="soc_analyst") as client:
        return [alert["id"] for alert in client.iter_alerts()]


def new_home(path: Path) -> Path:
    with case_client(Settings(home=path), role="admin") as client:
        client.add_tenant(TENANT, "Riverside Council")
    return path


@pytest.mark.slow
def test_kill_9_at_each_step_of_a_cycle_then_restart_gives_the_alerts_of_a_clean_run(corpora: Path,
                                                                                     tmp_path: Path) -> None:
    if not SOC.exists():
        pytest.skip(f"the soc entry point is not installed at {SOC} (run `make setup`)")
    rules = corpora / "sigmahq" / "rules" / "cloud" / "aws"
    files = sorted((corpora / "stratus").glob("aws.*.json"))
    groups = [files[start::4] for start in range(4)]

    clean = new_home(tmp_path / "clean")
    crashed = new_home(tmp_path / "crashed")

    detector = Detector(clean, rules)
    try:
        for group in groups:
            arrive(clean, group)
            time.sleep(1)
        caught_up(clean, detector)
        assert detector.terminate() == 0
    finally:
        if detector.process.poll() is None:
            detector.kill()
    expected = case_api_alerts(clean)
    assert len(expected) >= 40  # SigmaHQ's aws rules match dozens of Stratus' records

    # Killed as a cycle starts, after it evaluated (alerts stored in the lake, not yet delivered), and after
    # delivery (before its checkpoint): each time a restart goes on from the checkpoint.
    for group, moment in zip(groups, ["detection cycle started", "detection cycle evaluated", "alerts delivered"],
                             strict=False):
        detector = Detector(crashed, rules)
        try:
            arrive(crashed, group)
            detector.wait_for(moment)
            detector.kill()
        finally:
            if detector.process.poll() is None:
                detector.kill()
    assert load_checkpoint(Settings(home=crashed).detect_checkpoint_file) is None  # no cycle ever finished
    detector = Detector(crashed, rules)
    try:
        arrive(crashed, groups[3])
        caught_up(crashed, detector)
        assert detector.terminate() == 0
    finally:
        if detector.process.poll() is None:
            detector.kill()

    got = case_api_alerts(crashed)
    assert sorted(got) == sorted(expected)
    assert not [alert for alert, count in Counter(got).items() if count > 1]
    stored = [alert["id"] for alert in read_alerts(Settings(home=crashed).alerts_dir)]
    assert sorted(stored) == sorted(expected)  # the lake's alert store holds each once too
