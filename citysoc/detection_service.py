"""The detection service: compiled rules kept warm in one Spark session, run over the event store.

`DetectionService.run_once` is one pass: detect over [since, until), store the alerts not stored
before, deliver every alert of the pass to a sink (the case API). `DetectionService.run` is continuous
detection (`soc detect --every`, `soc run`): a cycle every interval that selects what is new by arrival
(the store's arrival marks after the checkpoint), evaluates event-time windows around it
(`citysoc.schedule.plan_windows`), delivers the alerts, and only then moves the checkpoint (a file written
atomically, and the store's consumer cursor). A failed cycle is retried by the next one; SIGTERM or a
`threading.Event` stops the service after the current cycle.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from pyspark.sql import SparkSession

from citysoc.errors import DetectionServiceError
from citysoc.schedule import (
    DEFAULT_ALLOWED_LATENESS,
    Window,
    WindowPlan,
    default_lookback,
    load_checkpoint,
    plan_windows,
    save_checkpoint,
)
from citysoc.store import EventStore
from correlator.engine.detection import DetectionResult, run_detection
from correlator.model import CompiledRuleSet

log = structlog.get_logger(__name__)

AlertSink = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]
"""Delivers alerts and answers what it made of them: `created`, `duplicates` and the `cases` touched
(the contract of `CaseClient.post_alerts`). It must be idempotent by alert id."""

NOTHING_DELIVERED: Mapping[str, Any] = {"created": 0, "duplicates": 0, "cases": []}


@dataclass(frozen=True)
class Cycle:
    """What a continuous cycle selected: arrival marks in (`after`, `upto`], the windows of the new events that
    the detection rules evaluated (`plan`), and the wider ones correlations evaluated (`context`, often none)."""

    after: int
    upto: int
    plan: WindowPlan
    context: WindowPlan = field(default_factory=WindowPlan)


_COMPLETE_WINDOW_OPS = frozenset({"lt", "lte", "eq", "neq"})  # fewer matches can satisfy these


def correlations_to_evaluate(rules: CompiledRuleSet, matched: set[str]) -> CompiledRuleSet:
    """The correlations whose outcome new matches (`matched`: rule ids) can change, with every rule they refer to
    (chained correlations and their detection rules): those referring, directly or through a chain, to a
    matched rule, and those whose condition fewer matches can satisfy."""
    by_id = {rule.id: rule for rule in rules.rules}

    def closure(rule_id: str, seen: set[str]) -> set[str]:
        if rule_id in seen or rule_id not in by_id:
            return seen
        seen.add(rule_id)
        spec = by_id[rule_id].correlation
        for referenced in spec.rule_ids if spec is not None else ():
            closure(referenced, seen)
        return seen

    wanted: set[str] = set()
    for correlation in rules.correlations():
        needed = closure(correlation.id, set())
        spec = correlation.correlation
        if (spec is not None and spec.op in _COMPLETE_WINDOW_OPS) or needed & matched:
            wanted |= needed
    return CompiledRuleSet([rule for rule in rules.rules if rule.id in wanted], [], rules.verified)


@dataclass(frozen=True)
class DetectionRun:
    """One finished pass: what detection found and what the sink made of its alerts (and, for a cycle of
    continuous detection, what it selected)."""

    result: DetectionResult
    delivered: Mapping[str, Any]
    cycle: Cycle | None = None


class DetectionReporter(Protocol):
    """What the service tells whoever watches it (the CLI renders it on a console)."""

    def step(self, description: str) -> AbstractContextManager[object]:
        """Long work under way ("running detection"), for as long as the context lasts."""
        ...

    def finished(self, run: DetectionRun, *, attempt: int) -> None:
        """A cycle that found new arrivals finished and its alerts were delivered."""
        ...

    def failed(self, error: Exception, *, attempt: int) -> None:
        """A cycle failed; the next one evaluates its arrivals again."""
        ...


@dataclass
class _Merged:
    results: list[DetectionResult] = field(default_factory=list)

    def result(self, rules: CompiledRuleSet) -> DetectionResult:
        """The results of a cycle's windows as one: counts added, each alert once."""
        merged = DetectionResult(unsupported=list(rules.unsupported))
        alerts: dict[str, dict[str, Any]] = {}
        new: dict[str, dict[str, Any]] = {}
        for result in self.results:
            for dataset, events in result.events.items():
                merged.events[dataset] = merged.events.get(dataset, 0) + events
            for dataset, matches in result.matches.items():
                into = merged.matches.setdefault(dataset, {})
                for rule_id, count in matches.items():
                    into[rule_id] = into.get(rule_id, 0) + count
            for step, seconds in result.timings.items():
                merged.timings[step] = merged.timings.get(step, 0.0) + seconds
            alerts.update((alert["id"], alert) for alert in result.alerts)
            new.update((alert["id"], alert) for alert in result.new_alerts)
        merged.alerts = sorted(alerts.values(), key=lambda a: (a["@timestamp"], a["id"]))
        merged.new_alerts = sorted(new.values(), key=lambda a: (a["@timestamp"], a["id"]))
        for alert in merged.alerts:
            merged.alerts_by_rule[alert["rule"]["id"]] = merged.alerts_by_rule.get(alert["rule"]["id"], 0) + 1
        return merged


class DetectionService:
    """Detection over `store` with one Spark session and one compiled rule set for its whole life.

    Alerts are stored under `alerts_dir` (only the new ones) and delivered to `sink` (all of a run's,
    since delivery is idempotent); `checkpoint_file` keeps the arrival mark of `run`'s last finished cycle,
    and the store knows it as the cursor of consumer `consumer`; `clock` is "now" for the allowed lateness.
    """

    def __init__(self, spark: SparkSession, rules: CompiledRuleSet, *, store: EventStore, alerts_dir: Path,
                 sink: AlertSink, reporter: DetectionReporter, checkpoint_file: Path, consumer: str = "detection",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.spark = spark
        self.rules = rules
        self.store = store
        self.alerts_dir = alerts_dir
        self.sink = sink
        self.reporter = reporter
        self.checkpoint_file = checkpoint_file
        self.consumer = consumer
        self._clock = clock
        self._detections = CompiledRuleSet([rule for rule in rules.rules if rule.kind == "detection"],
                                           list(rules.unsupported), rules.verified)

    def default_lookback(self) -> timedelta:
        """The longest correlation timespan of the rules, at least `citysoc.schedule.MIN_LOOKBACK`."""
        return default_lookback([rule.correlation.timespan_seconds for rule in self.rules.correlations()
                                 if rule.correlation is not None])

    def run_once(self, since: datetime | None = None, until: datetime | None = None) -> DetectionRun:
        """Detect over [since, until) (open where None), store new alerts, deliver the pass's alerts."""
        with self.reporter.step("running detection"):
            result = run_detection(self.spark, store=self.store, alerts_dir=self.alerts_dir, rules=self.rules,
                                   since=since, until=until)
        return DetectionRun(result, self._deliver(result))

    def _deliver(self, result: DetectionResult) -> Mapping[str, Any]:
        if not result.alerts:
            return NOTHING_DELIVERED
        with self.reporter.step("sending alerts to the case API"):
            # All alerts of the run, not only new ones: the sink is idempotent by id, and this heals a
            # previous run whose alerts were stored but not delivered.
            return self.sink(result.alerts)

    def run_cycle(self, *, after: int, upto: int, lookback: timedelta,
                  allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
                  floor: datetime | None = None) -> DetectionRun:
        """Evaluate what arrived with marks in (`after`, `upto`] and deliver its alerts (the checkpoint is the
        caller's).

        First the detection rules, over the event-time ranges of the new events only (`Cycle.plan`). Then
        the correlations that can have changed, those whose referenced rules matched a new event (and
        every `lt`/`lte`/`eq`/`neq` one: fewer matches can satisfy them), over windows around the new events
        widened by `lookback` (`Cycle.context`), so their windows see older and newer events. What was seen
        before raises the same alert ids again, which the alert store and the case API keep once."""
        arrived = self.store.arrivals(after=after, upto=upto, datasets=self.rules.datasets)
        cutoff = self._clock() - allowed_lateness
        plan = plan_windows(arrived, lookback=timedelta(0), cutoff=cutoff, floor=floor)
        if plan.late:
            late = plan.late_window()
            log.warning("events arrived later than the allowed lateness; not evaluated by continuous detection",
                        events=plan.late_events, window=str(late), tenants=late.tenants if late else ())
        log.info("detection cycle started", after=after, upto=upto, windows=len(plan.windows))
        merged = _Merged()
        context = WindowPlan()
        with self.reporter.step("running detection"):
            for window in plan.windows:
                merged.results.append(self._detect(self._detections, window))
            matched = {rule_id for result in merged.results for per_rule in result.matches.values()
                       for rule_id, count in per_rule.items() if count}
            correlations = correlations_to_evaluate(self.rules, matched)
            if correlations.rules:
                context = plan_windows(arrived, lookback=lookback, cutoff=cutoff, floor=floor)
                for window in context.windows:
                    merged.results.append(self._detect(correlations, window))
        result = merged.result(self.rules)
        log.info("detection cycle evaluated", upto=upto, alerts=len(result.alerts), new_alerts=len(result.new_alerts))
        delivered = self._deliver(result)
        log.info("alerts delivered", upto=upto, created=delivered["created"], duplicates=delivered["duplicates"])
        return DetectionRun(result, delivered, Cycle(after, upto, plan, context))

    def _detect(self, rules: CompiledRuleSet, window: Window) -> DetectionResult:
        return run_detection(self.spark, store=self.store, alerts_dir=self.alerts_dir, rules=rules,
                             since=window.since, until=window.until, tenants=window.tenants)

    def run(self, *, every: timedelta, lookback: timedelta, allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
            since: datetime | None = None, runs: int = 0, stop: threading.Event | None = None) -> list[DetectionRun]:
        """A cycle every `every` until `stop` is set or SIGTERM arrives (after the current cycle), or after
        `runs` cycles when not 0. Resumes after the checkpoint; without one, from the store's first arrival.
        `since`: events before it are never evaluated. A cycle with nothing new does not start Spark.

        Raises `DetectionServiceError` when it stops while its last cycles were failing.
        """
        stop = stop or threading.Event()
        after = load_checkpoint(self.checkpoint_file) or 0
        self.store.set_consumer_cursor(self.consumer, after)
        finished: list[DetectionRun] = []
        attempts = failed = 0
        with stop_on_sigterm(stop):
            while not stop.is_set():
                started = time.monotonic()
                attempts += 1
                try:
                    upto = self.store.arrival_watermark()
                    if upto > after:
                        run = self.run_cycle(after=after, upto=upto, lookback=lookback,
                                             allowed_lateness=allowed_lateness, floor=since)
                        # delivered: only now does the checkpoint move (a crash before it repeats the cycle)
                        save_checkpoint(self.checkpoint_file, upto)
                        log.info("checkpoint written", arrival=upto)
                        after = upto
                        self.store.set_consumer_cursor(self.consumer, upto)
                        self.reporter.finished(run, attempt=attempts)
                        finished.append(run)
                except Exception as exc:  # a service outlives a failed cycle: the next one evaluates it again
                    failed += 1
                    log.error("detection cycle failed", after=after, error=str(exc), exc_info=True)
                    self.reporter.failed(exc, attempt=attempts)
                else:
                    failed = 0
                if runs and attempts >= runs:
                    break
                late = time.monotonic() - started - every.total_seconds()
                if late > 0:
                    log.warning("detection cycle took longer than --every", seconds_over=round(late, 1))
                stop.wait(max(0.0, -late))
        if failed:
            raise DetectionServiceError(f"the last {failed} detection cycle(s) failed; see the messages above")
        return finished


@contextmanager
def stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
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
