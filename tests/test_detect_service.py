"""Continuous detection: what a cycle selects (by arrival), the event-time windows it evaluates, its checkpoint,
and the service's behaviour when the case API fails or SIGTERM arrives."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from citysoc.cli import app
from citysoc.deadletter import DeadLetterStore
from citysoc.detection_service import DetectionRun, DetectionService, correlations_to_evaluate
from citysoc.errors import DetectionServiceError
from citysoc.schedule import (
    Window,
    default_lookback,
    format_duration,
    load_checkpoint,
    parse_duration,
    plan_windows,
    save_checkpoint,
)
from citysoc.settings import Settings
from citysoc.store import Arrival, ParquetEventStore
from citysoc.wiring import alert_sink, case_client, compile_rules, event_store
from collectors.ingest import ingest_files
from correlator.compiler import DEFAULT_RULES_DIR
from correlator.errors import RuleLocation
from correlator.model import CompiledRule, CompiledRuleSet, CorrelationSpec
from correlator.sql import Condition

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = 1_000_000
STOP_LOGGING_EVENT = "10163ed2-2253-469d-a5ee-cbc6651f8934"
ROOT_LOGIN_RULE = "39091651-5bbd-4fb2-8262-0fa30355f092"
CYCLE = re.compile(r"cycle (\d+) arrivals \((\d+), (\d+)\] windows (.*?): detection: (\d+) events scanned, "
                   r"(\d+) alerts matched, (\d+) new")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), (" 1h ", 3600), ("2d", 172800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5", "5x", "-1m", "1.5h", "0s", ""])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|positive"):
        parse_duration(text)


def test_durations_print_in_their_largest_unit() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (90, 600, 7200, 86400)] == ["90s", "10m", "2h", "1d"]


def test_default_lookback_covers_the_longest_correlation() -> None:
    assert default_lookback([]) == timedelta(minutes=5)
    assert default_lookback([60, 1800, 600]) == timedelta(minutes=30)


def us(moment: datetime) -> int:
    return int(moment.timestamp() * US)


def arrival(tenant: str, first: datetime, last: datetime, events: int = 1) -> Arrival:
    return Arrival("system.auth", tenant, us(first), us(last), events)


def test_windows_surround_each_arrival_by_event_time_and_merge_where_they_meet() -> None:
    back = timedelta(minutes=5)
    hour_late = arrival("council", NOW - timedelta(hours=1), NOW - timedelta(hours=1))
    live = [arrival("council", NOW - timedelta(seconds=3), NOW), arrival("hospital", NOW - timedelta(minutes=8), NOW)]
    plan = plan_windows([hour_late, *live], lookback=back, cutoff=NOW - timedelta(days=1))
    assert plan.late == []
    assert plan.windows == [
        Window(NOW - timedelta(hours=1) - back, NOW - timedelta(hours=1) + back + timedelta(microseconds=1),
               ("council",)),
        Window(NOW - timedelta(minutes=8) - back, NOW + back + timedelta(microseconds=1), ("council", "hospital")),
    ]


def test_arrivals_older_than_the_allowed_lateness_are_reported_and_before_the_floor_left_out() -> None:
    old = arrival("school", NOW - timedelta(days=9), NOW - timedelta(days=8), events=40)
    ancient = arrival("school", NOW - timedelta(days=400), NOW - timedelta(days=400), events=2)
    live = arrival("school", NOW, NOW)
    plan = plan_windows([old, live, ancient], lookback=timedelta(minutes=5), cutoff=NOW - timedelta(days=7),
                        floor=NOW - timedelta(days=30))
    assert [w.tenants for w in plan.windows] == [("school",)] and plan.windows[0].until > NOW
    assert plan.late == [old] and plan.late_events == 40
    assert plan.late_window() == Window(NOW - timedelta(days=9), NOW - timedelta(days=8) + timedelta(microseconds=1),
                                        ("school",))
    # the floor also clips a window's look-back
    clipped = plan_windows([live], lookback=timedelta(hours=1), cutoff=NOW - timedelta(days=1),
                           floor=NOW - timedelta(minutes=1))
    assert clipped.windows[0].since == NOW - timedelta(minutes=1)


def rule(rule_id: str, *, refers: tuple[str, ...] = (), op: str = "gte") -> CompiledRule:
    spec = None if not refers else CorrelationSpec(type="event_count", rule_ids=refers, group_by=(), group_exprs=(),
                                                   timespan_seconds=300, op=op, count=10)
    return CompiledRule(id=rule_id, title=rule_id, level="high", tags=(), datasets=("system.auth",),
                        condition=Condition(("true",)), location=RuleLocation(), kind="correlation" if refers
                        else "detection", correlation=spec)


def test_only_correlations_new_matches_can_change_reread_their_context() -> None:
    rules = CompiledRuleSet([rule("failed"), rule("accepted"), rule("root"),
                             rule("brute-force", refers=("failed",)),
                             rule("then-success", refers=("brute-force", "accepted")),  # chained
                             rule("too-quiet", refers=("root",), op="lt")])

    def ids(matched: set[str]) -> list[str]:
        return sorted(r.id for r in correlations_to_evaluate(rules, matched).rules)

    # a new failed login: the brute force, the chain built on it, and the quiet check (fewer can satisfy it)
    assert ids({"failed"}) == ["accepted", "brute-force", "failed", "root", "then-success", "too-quiet"]
    assert ids({"accepted"}) == ["accepted", "brute-force", "failed", "root", "then-success", "too-quiet"]
    assert ids(set()) == ["root", "too-quiet"]
    assert ids({"root"}) == ["root", "too-quiet"]
    assert correlations_to_evaluate(CompiledRuleSet([rule("failed")]), {"failed"}).rules == []


def test_checkpoint_round_trip_and_a_damaged_one(tmp_path: Path) -> None:
    checkpoint = tmp_path / "home" / "detect-checkpoint.json"
    assert load_checkpoint(checkpoint) is None
    save_checkpoint(checkpoint, 42)
    assert load_checkpoint(checkpoint) == 42
    assert not list(checkpoint.parent.glob(".*.tmp"))
    checkpoint.write_text('{"arrival": -3}')
    assert load_checkpoint(checkpoint) is None
    checkpoint.write_text("{not json")
    assert load_checkpoint(checkpoint) is None  # the service then starts from the store's first arrival


def _soc(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class Recorder:
    """A reporter that records what the service says, and can stop it once a condition holds."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.runs: list[DetectionRun] = []
        self.failures: list[Exception] = []
        self.changed = threading.Condition()

    def step(self, description: str) -> AbstractContextManager[object]:
        self.steps.append(description)
        return nullcontext()

    def finished(self, run: DetectionRun, *, attempt: int) -> None:
        with self.changed:
            self.runs.append(run)
            self.changed.notify_all()

    def failed(self, error: Exception, *, attempt: int) -> None:
        with self.changed:
            self.failures.append(error)
            self.changed.notify_all()

    def wait_for_runs(self, count: int, timeout: float = 120) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.runs) >= count or self.failures, timeout), "no cycle"
        assert not self.failures, self.failures


def sshd_lines(path: Path, moment: datetime, *, source_ip: str, users: Sequence[str]) -> Path:
    """RFC 5424 sshd lines at `moment` (their event time), one accepted login per user."""
    stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    path.write_text("".join(f"<38>1 {stamp} web-01 sshd 4242 - - Accepted password for {user} from {source_ip} "
                            f"port 40022 ssh2\n" for user in users))
    return path


@pytest.fixture
def live_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    settings = Settings()
    with case_client(settings, role="admin") as client:
        client.add_tenant("riverside-council", "Riverside Council")
    yield settings


@pytest.mark.slow
def test_an_event_an_hour_old_arriving_now_is_detected_on_the_next_cycle(live_home: Settings, spark: SparkSession,
                                                                        tmp_path: Path) -> None:
    """The service runs; a live root login arrives and is detected; then one whose event time is an hour ago
    arrives (a collector backlog) and the next cycle detects it too. Selection by event time with a look-back
    of minutes never scans it."""
    settings = live_home
    store = event_store(settings)
    recorder = Recorder()
    service = DetectionService(spark, compile_rules(spark, [DEFAULT_RULES_DIR / "linux"]), store=store,
                               alerts_dir=settings.alerts_dir, sink=alert_sink(settings), reporter=recorder,
                               checkpoint_file=settings.detect_checkpoint_file)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, kwargs={"every": timedelta(milliseconds=200),
                                                          "lookback": timedelta(minutes=5), "stop": stop})
    worker.start()
    try:
        def arrive(name: str, moment: datetime, user: str) -> None:
            ingest_files(tenant="riverside-council", source="syslog", store=store,
                         dead_letters=DeadLetterStore(settings.deadletter_dir),
                         paths=[sshd_lines(tmp_path / name, moment, source_ip="192.0.2.10", users=[user])])

        now = datetime.now(UTC)
        arrive("live.log", now, "root")
        recorder.wait_for_runs(1)
        arrive("backlog.log", now - timedelta(hours=1), "root")
        recorder.wait_for_runs(2)
    finally:
        stop.set()
        worker.join(timeout=60)

    first, second = recorder.runs[:2]
    assert first.cycle is not None and second.cycle is not None
    assert (first.cycle.after, second.cycle.after, second.cycle.upto) == (0, 1, 2)
    hour_ago = now - timedelta(hours=1)
    backlog = hour_ago.replace(microsecond=hour_ago.microsecond // 1000 * 1000)  # the line's time: milliseconds
    # the detection rules read exactly the new event's stretch of event time, an hour back
    assert [(window.since, window.tenants) for window in second.cycle.plan.windows] == [(backlog,
                                                                                           ("riverside-council",))]
    assert [len(run.result.new_alerts) for run in (first, second)] == [1, 1]
    with case_client(settings, role="soc_analyst") as client:
        alerts = list(client.iter_alerts())
    assert sorted((alert["rule_id"], alert["timestamp"][:13]) for alert in alerts) == sorted([
        (ROOT_LOGIN_RULE, (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H")),
        (ROOT_LOGIN_RULE, now.strftime("%Y-%m-%dT%H"))])
    assert load_checkpoint(settings.detect_checkpoint_file) == 2
    assert recorder.steps.count("sending alerts to the case API") == 2


@pytest.fixture
def council(corpora: Path, spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with one tenant and Stratus' StopLogging record (2024) in its lake; the SigmaHQ rule for it."""
    monkeypatch.setenv("SOC_HOME", str(tmp_path / "soc"))
    monkeypatch.setenv("COLUMNS", "250")
    _soc("tenants", "add", "riverside-council")
    _soc("ingest", "--tenant", "riverside-council", "--source", "aws.cloudtrail",
         str(corpora / "stratus" / "aws.defense-evasion.cloudtrail-stop.json"))
    return corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"


@pytest.mark.slow
def test_every_evaluates_each_arrival_once_and_resumes_from_its_checkpoint(council: Path, tmp_path: Path,
                                                                           corpora: Path) -> None:
    rule = council
    detect = ["detect", "--no-own-rules", "--rules", str(rule), "--every", "1s", "--allowed-lateness", "5000d"]
    output = _soc(*detect, "--runs", "2")
    assert "allowed lateness 5000d" in output
    cycles = CYCLE.findall(output)
    assert [(after, upto, matched, new) for _, after, upto, _, _, matched, new in cycles] == [
        ("0", "1", "1", "1")]  # the second cycle found nothing new and did not run Spark
    assert load_checkpoint(tmp_path / "soc" / "detect-checkpoint.json") == 1

    # Another 2024 file arrives; the restarted service evaluates only it (around its own event time).
    _soc("ingest", "--tenant", "riverside-council", "--source", "aws.cloudtrail",
         str(corpora / "stratus" / "aws.defense-evasion.cloudtrail-delete.json"))
    resumed = CYCLE.findall(_soc(*detect, "--runs", "1"))
    # DeleteTrail (12:46:41) is 20 minutes before StopLogging: its window does not reach it
    assert [(after, upto, matched, new) for _, after, upto, _, _, matched, new in resumed] == [("1", "2", "1", "1")]
    alerts = [orjson.loads(line) for line in _soc("alerts", "list", "--json").splitlines() if line.startswith("{")]
    assert len(alerts) == 2 and [a["event"]["ids"] for a in alerts].count([STOP_LOGGING_EVENT]) == 1

    # Too late for a 7-day allowed lateness: reported with the command that evaluates it, not evaluated.
    (tmp_path / "soc" / "detect-checkpoint.json").unlink()
    late = _soc("detect", "--no-own-rules", "--rules", str(rule), "--every", "1s", "--runs", "1")
    assert re.search(r"events of riverside-council arrived later than the allowed lateness .* `soc detect "
                     r"--since 2024-\S+ --until 2024-\S+` evaluates them", late), late


@pytest.mark.slow
def test_a_failed_cycle_is_retried_and_nothing_is_skipped(council: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The case API is unreachable: the service keeps going, its checkpoint does not move, and the next cycle
    that can deliver sends what the failed ones matched."""
    rule = council
    detect = ["detect", "--no-own-rules", "--rules", str(rule), "--every", "1s", "--allowed-lateness", "5000d"]

    monkeypatch.setenv("SOC_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("SOC_API_KEY", "unused")
    failing = CliRunner().invoke(app, [*detect, "--runs", "2"])
    assert isinstance(failing.exception, DetectionServiceError), failing.output
    assert re.findall(r"cycle (\d): failed \((\w+)", failing.output) == [("1", "ConnectError"), ("2", "ConnectError")]
    assert load_checkpoint(tmp_path / "soc" / "detect-checkpoint.json") is None  # no cycle finished

    monkeypatch.delenv("SOC_API_URL")
    healed = _soc(*detect, "--runs", "1")
    assert "1 alerts matched, 0 new; case API: 1 alerts added" in healed  # stored before, delivered now
    assert load_checkpoint(tmp_path / "soc" / "detect-checkpoint.json") == 1


@pytest.mark.slow
def test_the_service_delivers_to_any_sink_and_stops_on_its_event(council: Path, spark: Any, tmp_path: Path) -> None:
    """The seams the CLI uses: a sink that is not the case API, a reporter, a stop event, a clock."""
    delivered: list[Sequence[Mapping[str, Any]]] = []

    def sink(alerts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        delivered.append(alerts)
        return {"created": len(alerts), "duplicates": 0, "cases": []}

    stop = threading.Event()
    recorder = Recorder()
    lake = ParquetEventStore(tmp_path / "soc" / "lake" / "events")  # where the fixture's `soc ingest` wrote
    checkpoint = tmp_path / "service-checkpoint.json"
    service = DetectionService(spark, compile_rules(spark, [council]), store=lake, alerts_dir=tmp_path / "alerts",
                               sink=sink, reporter=recorder, checkpoint_file=checkpoint,
                               clock=lambda: datetime(2024, 8, 1, tzinfo=UTC))
    assert service.default_lookback() == timedelta(minutes=5)  # no correlation rule: the minimum
    worker = threading.Thread(target=service.run, kwargs={"every": timedelta(hours=1),
                                                          "lookback": timedelta(minutes=5), "stop": stop})
    worker.start()
    recorder.wait_for_runs(1)
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()  # stopped without waiting an hour
    assert recorder.steps == ["running detection", "sending alerts to the case API"]
    assert [[a["event"]["ids"] for a in alerts] for alerts in delivered] == [[[STOP_LOGGING_EVENT]]]
    assert load_checkpoint(checkpoint) == 1


@pytest.mark.slow
def test_sigterm_stops_the_service_cleanly(corpora: Path, tmp_path: Path) -> None:
    soc = Path(sys.executable).parent / "soc"
    if not soc.exists():
        pytest.skip(f"the soc entry point is not installed at {soc} (run `make setup`)")
    env = {**os.environ, "SOC_HOME": str(tmp_path / "soc"), "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}
    assert subprocess.run([str(soc), "tenants", "add", "riverside-council"], env=env, check=False).returncode == 0
    assert subprocess.run([str(soc), "ingest", "--tenant", "riverside-council", "--source", "aws.cloudtrail",
                           str(corpora / "stratus" / "aws.defense-evasion.cloudtrail-stop.json")],
                          env=env, check=False).returncode == 0
    rule = corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"
    service = subprocess.Popen([str(soc), "detect", "--no-own-rules", "--rules", str(rule), "--every", "1s",
                                "--allowed-lateness", "5000d"],
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
            if line.startswith("detecting every"):
                service.send_signal(signal.SIGTERM)
                break
        rest, _ = service.communicate(timeout=120)
    finally:
        if service.poll() is None:
            service.kill()
    output = "".join(lines) + rest
    assert service.returncode == 0, output
    # the signal came as the first cycle was due: either it stopped the service before it, or the cycle
    # finished, delivered and checkpointed; no other began
    cycles = [(n, after, upto) for n, after, upto, *_ in CYCLE.findall(output)]
    assert cycles in ([], [("1", "0", "1")]), output
    assert load_checkpoint(tmp_path / "soc" / "detect-checkpoint.json") == (1 if cycles else None)
