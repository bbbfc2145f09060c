"""The detection service: compiled rules kept warm in one Spark session, run over the event store.

`DetectionService.run_once` is one pass: detect over [since, until), store the alerts not stored
before, deliver every alert of the pass to a sink (the case API). `DetectionService.run` is
`soc detect --every`: a pass every interval over the windows of `citysoc.schedule`, a checkpoint
(the end of the last finished run) in a state file, a failed run retried by the next one, and a stop
on SIGTERM or a `threading.Event` after the current run.

The service knows nothing of the terminal or of how the case API is reached: a `DetectionReporter`
shows progress and outcomes, an `AlertSink` delivers. The composition root (`citysoc.wiring`,
`citysoc.cli`) chooses both.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from pyspark.sql import SparkSession

from citysoc.errors import DetectionServiceError
from citysoc.schedule import Window, default_lookback, load_state, next_window, save_state
from citysoc.store import EventStore
from correlator.engine.detection import DetectionResult, run_detection
from correlator.model import CompiledRuleSet

log = structlog.get_logger(__name__)

AlertSink = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]
"""Delivers alerts and answers what it made of them: `created`, `duplicates` and the `cases` touched
(the contract of `CaseClient.post_alerts`). It must be idempotent by alert id."""


@dataclass(frozen=True)
class DetectionRun:
    """One finished pass: what detection found and what the sink made of its alerts."""

    result: DetectionResult
    delivered: Mapping[str, Any]


class DetectionReporter(Protocol):
    """What the service tells whoever watches it (the CLI renders it on a console)."""

    def step(self, description: str) -> AbstractContextManager[object]:
        """Long work under way ("running detection"), for as long as the context lasts."""
        ...

    def finished(self, run: DetectionRun, *, attempt: int, window: Window) -> None:
        """A scheduled run finished and its alerts were delivered."""
        ...

    def failed(self, error: Exception, *, attempt: int, window: Window) -> None:
        """A scheduled run failed; the next run covers its window again."""
        ...


class DetectionService:
    """Detection over `store` with one Spark session and one compiled rule set for its whole life.

    Alerts are stored under `alerts_dir` (only the new ones) and delivered to `sink` (all of a run's,
    since delivery is idempotent); `state_file` is the checkpoint of `run`; `clock` is "now" for the
    end of each scheduled window.
    """

    def __init__(self, spark: SparkSession, rules: CompiledRuleSet, *, store: EventStore, alerts_dir: Path,
                 sink: AlertSink, reporter: DetectionReporter, state_file: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.spark = spark
        self.rules = rules
        self.store = store
        self.alerts_dir = alerts_dir
        self.sink = sink
        self.reporter = reporter
        self.state_file = state_file
        self._clock = clock

    def default_lookback(self) -> timedelta:
        """The longest correlation timespan of the rules, at least `citysoc.schedule.MIN_LOOKBACK`."""
        return default_lookback([rule.correlation.timespan_seconds for rule in self.rules.correlations()
                                 if rule.correlation is not None])

    def run_once(self, since: datetime | None = None, until: datetime | None = None) -> DetectionRun:
        """Detect over [since, until) (open where None), store new alerts, deliver the pass's alerts."""
        with self.reporter.step("running detection"):
            result = run_detection(self.spark, store=self.store, alerts_dir=self.alerts_dir, rules=self.rules,
                                   since=since, until=until)
        with self.reporter.step("sending alerts to the case API"):
            # All alerts of the run, not only new ones: the sink is idempotent by id, and this heals a
            # previous run whose alerts were stored but not delivered.
            delivered = self.sink(result.alerts)
        return DetectionRun(result, delivered)

    def run(self, *, every: timedelta, lookback: timedelta, since: datetime | None = None, runs: int = 0,
            stop: threading.Event | None = None) -> list[DetectionRun]:
        """A run every `every` until `stop` is set or SIGTERM arrives (after the current run), or after
        `runs` runs when not 0. Resumes from the state file unless `since` says where to start.

        Raises `DetectionServiceError` when it stops while its last runs were failing.
        """
        stop = stop or threading.Event()
        previous = None if since is not None else load_state(self.state_file)
        finished: list[DetectionRun] = []
        attempts = failed = 0
        with _stop_on_sigterm(stop):
            while not stop.is_set():
                started = time.monotonic()
                attempts += 1
                window = next_window(now=self._clock().replace(microsecond=0), every=every, lookback=lookback,
                                     previous_until=previous, since=since if previous is None else None)
                try:
                    run = self.run_once(window.since, window.until)
                except Exception as exc:  # a service outlives a failed run: the next one covers its window again
                    failed += 1
                    if previous is None:
                        since = window.since  # a first run that failed: the retry starts where it started
                    log.error("detection run failed", window=str(window), error=str(exc), exc_info=True)
                    self.reporter.failed(exc, attempt=attempts, window=window)
                else:
                    failed = 0
                    self.reporter.finished(run, attempt=attempts, window=window)
                    finished.append(run)
                    save_state(self.state_file, window.until)
                    previous = window.until
                if runs and attempts >= runs:
                    break
                late = time.monotonic() - started - every.total_seconds()
                if late > 0:
                    log.warning("detection run took longer than --every", seconds_over=round(late, 1))
                stop.wait(max(0.0, -late))
        if failed:
            raise DetectionServiceError(f"the last {failed} detection run(s) failed; see the messages above")
        return finished


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets `stop` while the context lasts. Python only lets the main thread set handlers; a
    service run elsewhere (a test, an embedding application) is stopped through the event alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
