"""`soc detect --every`: the windows of a long-lived detection service, its state, and how it stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from citysoc.cli import app
from citysoc.detection_service import DetectionRun, DetectionService
from citysoc.errors import DetectionServiceError
from citysoc.schedule import (
    Window,
    default_lookback,
    format_duration,
    load_state,
    next_window,
    parse_duration,
    save_state,
)
from citysoc.store import ParquetEventStore
from citysoc.wiring import compile_rules

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STOP_LOGGING_EVENT = "10163ed2-2253-469d-a5ee-cbc6651f8934"
WINDOW = re.compile(r"run (\d+) \[(\S+)Z, (\S+)Z\): detection: (\d+) events scanned, (\d+) alerts matched, (\d+) new")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), (" 1h ", 3600), ("2d", 172800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5", "5x", "-1m", "1.5h", "0s", ""])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|positive"):
        parse_duration(text)


def test_durations_print_in_their_largest_unit() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (90, 600, 7200, 86400)] == ["90s", "10m", "2h", "1d"]


def test_windows_follow_on_with_the_lookback() -> None:
    every, back = timedelta(minutes=5), timedelta(minutes=10)
    first = next_window(now=NOW, every=every, lookback=back, previous_until=None)
    assert (first.since, first.until) == (NOW - every - back, NOW)
    second = next_window(now=NOW + every, every=every, lookback=back, previous_until=first.until)
    assert (second.since, second.until) == (NOW - back, NOW + every)
    since = datetime(2024, 1, 1, tzinfo=UTC)  # --since wins over a saved state on the first run
    assert next_window(now=NOW, every=every, lookback=back, previous_until=NOW, since=since).since == since
    # a clock that went backwards never gives a window that ends before it starts
    backwards = next_window(now=NOW, every=every, lookback=timedelta(0), previous_until=NOW + every)
    assert backwards.since == backwards.until == NOW
    assert str(first) == "[2026-03-01T11:45:00Z, 2026-03-01T12:00:00Z)"


def test_default_lookback_covers_the_longest_correlation() -> None:
    assert default_lookback([]) == timedelta(minutes=5)
    assert default_lookback([60, 1800, 600]) == timedelta(minutes=30)


def test_state_round_trip_and_unreadable_state(tmp_path: Path) -> None:
    state = tmp_path / "home" / "detect-state.json"
    assert load_state(state) is None
    save_state(state, NOW)
    assert load_state(state) == NOW
    state.write_text("{not json")
    assert load_state(state) is None  # a damaged state file means "no state", not a crash


def _runs(output: str) -> list[tuple[int, datetime, datetime, int, int, int]]:
    return [(int(n), datetime.fromisoformat(a + "+00:00"), datetime.fromisoformat(b + "+00:00"),
             int(events), int(matched), int(new)) for n, a, b, events, matched, new in WINDOW.findall(output)]


def _soc(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def council(corpora: Path, spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with one tenant and Stratus' StopLogging record (2024) in its lake; the SigmaHQ rule for it."""
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    monkeypatch.setenv("COLUMNS", "200")
    _soc("tenants", "add", "riverside-council")
    _soc("ingest", "--tenant", "riverside-council", "--source", "aws.cloudtrail",
         str(corpora / "stratus" / "aws.defense-evasion.cloudtrail-stop.json"))
    return corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"


@pytest.mark.slow
def test_every_runs_windows_back_to_back_and_resumes(council: Path, tmp_path: Path) -> None:
    rule = council

    before = datetime.now(UTC)
    output = _soc("detect", "--no-own-rules", "--rules", str(rule), "--every", "1s", "--lookback", "2m",
                  "--runs", "2", "--since", "2024-01-01")
    assert "detecting every 1s (look-back 2m)" in output
    (n1, since1, until1, events1, matched1, new1), (n2, since2, until2, events2, matched2, new2) = _runs(output)
    assert (n1, n2) == (1, 2)
    assert since1 == datetime(2024, 1, 1, tzinfo=UTC) and until1 >= before.replace(microsecond=0)
    assert events1 >= 1 and matched1 == new1 == 1  # the StopLogging record of 2024
    assert since2 == until1 - timedelta(minutes=2) and until2 > until1  # follows on, with the look-back
    assert (events2, matched2, new2) == (0, 0, 0)
    assert load_state(tmp_path / "soc" / "detect-state.json") == until2

    # A restart without --since goes on from the saved end of the last run.
    resumed = _runs(_soc("detect", "--no-own-rules", "--rules", str(rule), "--every", "1m", "--lookback", "2m",
                         "--runs", "1"))
    assert [(n, since) for n, since, *_ in resumed] == [(1, until2 - timedelta(minutes=2))]
    alerts = [orjson.loads(line) for line in _soc("alerts", "list", "--json").splitlines() if line.startswith("{")]
    assert [a["event"]["ids"] for a in alerts] == [[STOP_LOGGING_EVENT]]  # raised once over three runs


@pytest.mark.slow
def test_a_failed_run_is_retried_and_nothing_is_skipped(council: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The case API is unreachable: the service keeps going, its state does not advance, and the next
    run that can deliver sends what the failed runs matched."""
    rule = council
    detect = ["detect", "--no-own-rules", "--rules", str(rule), "--every", "1s", "--since", "2024-01-01"]

    monkeypatch.setenv("SOC_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("SOC_API_KEY", "unused")
    runner = CliRunner()
    failing = runner.invoke(app, [*detect, "--runs", "2"])
    assert isinstance(failing.exception, DetectionServiceError), failing.output
    failures = re.findall(r"run (\d) \[(\S+)Z, \S+Z\): failed \((\w+)", failing.output)
    assert [(n, since) for n, since, _ in failures] == [("1", "2024-01-01T00:00:00"), ("2", "2024-01-01T00:00:00")]
    assert "ConnectError" in {kind for _, _, kind in failures}
    assert load_state(tmp_path / "soc" / "detect-state.json") is None  # no run finished

    monkeypatch.delenv("SOC_API_URL")
    healed = _soc(*detect, "--runs", "1")
    assert "1 alerts matched, 0 new; case API: 1 alerts added" in healed  # stored before, delivered now
    assert load_state(tmp_path / "soc" / "detect-state.json") is not None


@pytest.mark.slow
def test_sigterm_stops_the_service_after_its_current_run(corpora: Path, tmp_path: Path) -> None:
    soc = Path(sys.executable).parent / "soc"
    if not soc.exists():
        pytest.skip(f"the soc entry point is not installed at {soc} (run `make setup`)")
    env = {**os.environ, "SOC_HOME": str(tmp_path / "soc"), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    assert subprocess.run([str(soc), "tenants", "add", "riverside-council"], env=env, check=False).returncode == 0
    rule = corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"
    service = subprocess.Popen([str(soc), "detect", "--no-own-rules", "--rules", str(rule), "--every", "1s"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 180
    try:
        assert service.stdout is not None
        while time.monotonic() < deadline:
            line = service.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("run 2 "):
                service.send_signal(signal.SIGTERM)
                break
        rest, _ = service.communicate(timeout=120)
    finally:
        if service.poll() is None:
            service.kill()
    output = "".join(lines) + rest
    assert service.returncode == 0, output
    numbers = [run[0] for run in _runs(output)]
    assert numbers[:2] == [1, 2] and numbers == list(range(1, len(numbers) + 1)), output
    assert load_state(tmp_path / "soc" / "detect-state.json") is not None


class StopAfterFirstRun:
    """A reporter that records what the service says and stops it after its first finished run."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.steps: list[str] = []
        self.runs: list[tuple[int, Window]] = []

    def step(self, description: str) -> AbstractContextManager[object]:
        self.steps.append(description)
        return nullcontext()

    def finished(self, run: DetectionRun, *, attempt: int, window: Window) -> None:
        self.runs.append((attempt, window))
        self.stop.set()

    def failed(self, error: Exception, *, attempt: int, window: Window) -> None:
        raise AssertionError(f"run {attempt} {window} failed: {error}")


@pytest.mark.slow
def test_the_service_delivers_to_any_sink_and_stops_on_its_event(council: Path, spark: Any, tmp_path: Path) -> None:
    """The seams the CLI uses: a sink that is not the case API, a reporter, a stop event."""
    delivered: list[Sequence[Mapping[str, Any]]] = []

    def sink(alerts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        delivered.append(alerts)
        return {"created": len(alerts), "duplicates": 0, "cases": []}

    stop = threading.Event()
    reporter = StopAfterFirstRun(stop)
    lake = ParquetEventStore(tmp_path / "soc" / "lake" / "events")  # where the fixture's `soc ingest` wrote
    state = tmp_path / "service-state.json"
    service = DetectionService(spark, compile_rules(spark, [council]), store=lake,
                               alerts_dir=tmp_path / "alerts", sink=sink, reporter=reporter, state_file=state,
                               clock=lambda: NOW)
    assert service.default_lookback() == timedelta(minutes=5)  # no correlation rule: the minimum

    runs = service.run(every=timedelta(hours=1), lookback=timedelta(minutes=5), since=datetime(2024, 1, 1, tzinfo=UTC),
                       stop=stop)
    assert reporter.runs == [(1, Window(datetime(2024, 1, 1, tzinfo=UTC), NOW))]  # stopped without waiting an hour
    assert reporter.steps == ["running detection", "sending alerts to the case API"]
    assert [[a["event"]["ids"] for a in alerts] for alerts in delivered] == [[[STOP_LOGGING_EVENT]]]
    assert [len(run.result.new_alerts) for run in runs] == [1]
    assert load_state(state) == NOW
