"""The pull runner: one poll of each source, batch by batch: spool append (durable), then checkpoint, then
acknowledge. Nothing is skipped by a crash: a batch whose checkpoint was not written is fetched again, and
the store de-duplicates it by event id. A source whose pull fails is logged and tried again at the next
poll; it never stops the other sources."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from citysoc.deadletter import DeadLetter, DeadLetterStore
from collectors.intake import CLOUDTRAIL, SpoolWriter, cloudtrail_accounts
from collectors.pull.base import PullBatch, PullError, PullSource, get_puller
from collectors.pull.checkpoints import PullCheckpoints
from collectors.records import RawRecord

log = structlog.get_logger("collectors.pull")

APPEND_RECORDS = 5_000  # records per spool frame: a large S3 object or content blob is several frames
DEAD_RAW_CHARS = 64 * 1024


@dataclass
class PullReport:
    """What one poll of the sources did."""

    records: int = 0
    batches: int = 0
    dead_lettered: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # source name -> why


class PullRunner:
    """Polls pull sources into a spool. `sources` is called at each poll (the registry may change)."""

    def __init__(self, spool: SpoolWriter, checkpoints: PullCheckpoints, dead_letters: DeadLetterStore,
                 sources: Callable[[], Iterable[PullSource]], *, environ: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.spool = spool
        self.checkpoints = checkpoints
        self.dead_letters = dead_letters
        self.sources = sources
        self.environ = environ
        self.sleep = sleep

    def poll(self, stop: threading.Event | None = None) -> PullReport:
        """Pull every source once (a set `stop` ends the poll after the batch in hand)."""
        report = PullReport()
        try:
            sources = list(self.sources())
        except Exception as error:  # the registry (the case API) unreachable: try again at the next poll
            log.warning("pull sources could not be listed; trying again at the next poll", error=str(error))
            report.failed["*"] = f"the pull sources could not be listed: {error}"
            return report
        for source in sources:
            if stop is not None and stop.is_set():
                break
            try:
                self.pull_source(source, report, stop=stop)
            except Exception as error:  # one source's failure (its provider, its credential) never stops the others
                reason = error.reason if isinstance(error, PullError) else repr(error)
                report.failed[source.name] = reason
                log.warning("pull failed; retried at the next poll", tenant=source.tenant, source=source.name,
                            kind=source.kind, reason=reason)
        return report

    def pull_source(self, source: PullSource, report: PullReport | None = None, *,
                    stop: threading.Event | None = None) -> PullReport:
        report = report if report is not None else PullReport()
        puller = get_puller(source.kind)(source, environ=self.environ, sleep=self.sleep,
                                         state_dir=self.checkpoints.directory)
        batches = None
        try:
            batches = puller.batches(self.checkpoints.load(source))
            for batch in batches:
                if source.parser == CLOUDTRAIL:
                    _refuse_foreign_accounts(batch, source)
                for start in range(0, len(batch.records), APPEND_RECORDS):
                    self.spool.append(tenant=source.tenant, source=source.parser,
                                      records=batch.records[start:start + APPEND_RECORDS], source_id=source.id)
                if batch.dead:
                    self.dead_letters.put([_dead(record, reason, source) for record, reason in batch.dead])
                if batch.checkpoint is not None:
                    self.checkpoints.save(source, batch.checkpoint)
                if batch.acknowledge is not None:
                    batch.acknowledge()
                report.batches += 1
                report.records += len(batch.records)
                report.dead_lettered += len(batch.dead)
                if stop is not None and stop.is_set():
                    break
        finally:
            if isinstance(batches, Generator):  # its own clean-up (a nack of what was not stored) runs now
                batches.close()
            puller.close()
        if report.records or report.dead_lettered:
            log.info("pulled", tenant=source.tenant, source=source.name, kind=source.kind, records=report.records,
                     dead_lettered=report.dead_lettered)
        return report

    def run(self, stop: threading.Event, *, every: float) -> None:
        """Poll every `every` seconds until `stop` is set."""
        while not stop.is_set():
            self.poll(stop)
            stop.wait(every)


def _refuse_foreign_accounts(batch: PullBatch, source: PullSource) -> None:
    """CloudTrail records naming an account not registered for the source become dead letters, as the HTTP
    intake refuses them: a bucket holding another member's trail never files it under this tenant."""
    kept: list[RawRecord] = []
    registered = set(source.cloud_accounts)
    for record in batch.records:
        foreign = sorted(cloudtrail_accounts([record]) - registered)
        if foreign:
            batch.dead.append((record, f"the record names account {', '.join(foreign)}, not registered for the "
                                       "source: the city SOC adds the member's accounts to it"))
        else:
            kept.append(record)
    batch.records = kept


def _dead(record: RawRecord, reason: str, source: PullSource) -> DeadLetter:
    raw = record.payload.decode("utf-8", "backslashreplace")
    if len(raw) > DEAD_RAW_CHARS:
        raw = f"{raw[:DEAD_RAW_CHARS]}... [{len(record.payload):,} bytes, cut]"
    return DeadLetter(tenant=source.tenant, source=source.parser, origin=record.origin, reason=reason, raw=raw,
                      received=record.received.isoformat())
