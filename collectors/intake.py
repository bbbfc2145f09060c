"""The intake: what every listener hands records to. It attributes them and makes them durable.

`Intake.accept(records, peer=, transport=, credential=)` resolves the sender's source from its
credential or its network (`SourceRegistry.resolve`, never from message content), checks that records
of a cloud source name only the accounts registered for it, appends the records to the spool under
that source's tenant and parser, and returns only once they are durable. Otherwise it raises:
`NotAttributed` (no source claims the sender), `ForeignContent` (a record names another tenant's
cloud account), both `Refused`, or `SpoolFullError`. Listeners turn those into what their protocol
can say: a RELP `500`, an HTTP status, or a dropped datagram logged once a minute per sender.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import orjson
import structlog

from citysoc.deadletter import DeadLetter, DeadLetterStore
from collectors.attribution import Credential, Refused, SourceRef, SourceRegistry, Transport
from collectors.base import get_parser
from collectors.errors import CollectorError
from collectors.records import RawRecord
from collectors.spool import SpoolFullError

__all__ = ["ForeignContent", "Intake", "IntakeStats", "NotAttributed", "ParserChoiceError", "RateLimitedLog",
           "ReloadingRegistry", "SpoolFullError", "SpoolWriter", "cloudtrail_accounts", "parser_of"]

log = structlog.get_logger("collectors.intake")

CLOUDTRAIL = "aws.cloudtrail"
DEAD_LETTER_RAW_BYTES = 64 * 1024  # what a dead letter keeps of a refused message: enough to recognise it


class NotAttributed(Refused):
    """No source of any member organisation claims the sender (unknown network, token or certificate)."""


class ForeignContent(Refused):
    """A record names a cloud account that is not registered for the sender's source."""


class ParserChoiceError(CollectorError):
    """A request names a parser its source does not send, or none for a source that fixes none."""


class SpoolWriter(Protocol):
    """What the intake needs of the spool (`collectors.spool.Spool`)."""

    def append(self, *, tenant: str, source: str, records: Sequence[RawRecord],
               source_id: int | None = None) -> None: ...


class IntakeStats:
    """Counters per (transport, outcome): accepted, refused, cut, dropped, full. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, transport: str, outcome: str, records: int = 1) -> None:
        with self._lock:
            self._counts[(transport, outcome)] += records

    def get(self, transport: str, outcome: str) -> int:
        with self._lock:
            return self._counts[(transport, outcome)]

    def snapshot(self) -> dict[str, int]:
        """`{"udp.accepted": 12, ...}`, for logs."""
        with self._lock:
            return {f"{transport}.{outcome}": count for (transport, outcome), count in sorted(self._counts.items())}


class RateLimitedLog:
    """Logs a warning once per key per `every` seconds, saying how many were suppressed in between, so a
    flood of refused datagrams costs one line a minute per sender, not one per datagram."""

    def __init__(self, *, every: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.every = every
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # key -> (when last logged, suppressed since)

    def warning(self, key: str, event: str, **fields: object) -> bool:
        """Log `event` unless `key` was logged less than `every` seconds ago; True when it was logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.every:
                self._last[key] = (last[0], last[1] + 1)
                return False
            if len(self._last) >= self._max_keys:  # bounded under a flood of distinct senders: forget the oldest
                recent = [(k, v) for k, v in self._last.items() if now - v[0] < self.every]
                self._last = dict(recent[len(recent) - self._max_keys // 2:] if len(recent) >= self._max_keys
                                  else recent)
            self._last[key] = (now, 0)
            suppressed = last[1] if last is not None else 0
        log.warning(event, **fields, suppressed=suppressed)
        return True


class Intake:
    """Attribution plus spool append (see the module doc). Thread-safe: listeners call it from worker
    threads, because an append waits for the disk."""

    def __init__(self, spool: SpoolWriter, registry: Callable[[], SourceRegistry], *,
                 dead_letters: DeadLetterStore | None = None, stats: IntakeStats | None = None) -> None:
        self._spool = spool
        self._registry = registry
        self._dead_letters = dead_letters
        self.stats = stats or IntakeStats()

    def resolve(self, *, peer: str, transport: Transport, credential: Credential | None) -> SourceRef:
        """The sender's source; `NotAttributed` with advice when none claims it."""
        try:
            return self._registry().resolve(peer=peer, transport=transport, credential=credential)
        except NotAttributed:
            raise
        except Refused as refused:
            raise NotAttributed(refused.reason, where=refused.where) from None

    def accept(self, records: Sequence[RawRecord], *, peer: str, transport: Transport,
               credential: Credential | None, parser: str | None = None) -> SourceRef:
        """Attribute and append `records`; returns their source once they are durable in the spool.

        `parser` names the parser for a source that does not fix one (an HTTP source's `?source=`); a
        source that fixes one refuses another.
        """
        source = self.resolve(peer=peer, transport=transport, credential=credential)
        parser_name = parser_of(source, parser)
        if parser_name == CLOUDTRAIL:
            try:
                self._registry().check_accounts(source, cloudtrail_accounts(records))
            except Refused as refused:
                raise ForeignContent(refused.reason, where=refused.where) from None
        self._spool.append(tenant=source.tenant, source=parser_name, records=records, source_id=source.id)
        self.stats.add(transport, "accepted", len(records))
        return source

    def reject(self, records: Sequence[RawRecord], *, reason: str, peer: str, transport: Transport,
               credential: Credential | None) -> None:
        """Dead-letter records the listener could not take whole (over its size limit, cut short by a
        closed connection) under their sender's tenant, with `reason`; `NotAttributed` as `accept`."""
        source = self.resolve(peer=peer, transport=transport, credential=credential)
        self.stats.add(transport, "cut", len(records))
        letters = [DeadLetter(tenant=source.tenant, source=source.parser or source.kind, origin=record.origin,
                              reason=reason, raw=record.payload[:DEAD_LETTER_RAW_BYTES].decode("utf-8", "replace"),
                              received=record.received.isoformat()) for record in records]
        if self._dead_letters is None:
            log.warning("records cut", tenant=source.tenant, source=source.name, reason=reason, records=len(records))
            return
        self._dead_letters.put(letters)


def parser_of(source: SourceRef, requested: str | None) -> str:
    """The canonical parser name records of `source` go to (see `Intake.accept`)."""
    fixed = get_parser(source.parser).name if source.parser else None
    if requested:
        canonical = get_parser(requested).name  # UnknownParserError lists the known names
        if fixed is not None and canonical != fixed:
            raise ParserChoiceError(f"source {source.name!r} sends {fixed}, not {canonical}: leave the parser out")
        return canonical
    if fixed is None:
        raise ParserChoiceError(f"source {source.name!r} has no parser of its own: say which (?source=NAME)")
    return fixed


def cloudtrail_accounts(records: Iterable[RawRecord]) -> set[str]:
    """The AWS accounts CloudTrail records are filed under (`cloud.account.id`: recipientAccountId, else
    userIdentity.accountId), including records inside an S3 object's `{"Records": [...]}`. A record that
    is not JSON names no account here: the parser dead-letters it."""
    accounts: set[str] = set()
    for record in records:
        try:
            document = orjson.loads(record.payload)
        except orjson.JSONDecodeError:
            continue
        entries = document.get("Records") if isinstance(document, dict) and "Records" in document else [document]
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            identity = entry.get("userIdentity")
            account = entry.get("recipientAccountId") or (identity.get("accountId") if isinstance(identity, dict)
                                                          else None)
            if isinstance(account, str | int) and not isinstance(account, bool) and str(account):
                accounts.add(str(account))
    return accounts


class ReloadingRegistry:
    """The current `SourceRegistry`, reloaded every `every` seconds (and on `wake`, e.g. SIGHUP), so a
    source added while the intake runs is recognised without a restart. A failed reload keeps the
    registry that was working and says why."""

    def __init__(self, load: Callable[[], SourceRegistry], *, every: float = 30.0) -> None:
        self._load = load
        self.every = every
        self._registry = load()  # the first load must work: without it no sender can be attributed
        self._wake = threading.Event()
        self.reloads = 0
        log.info("source registry loaded", sources=len(self._registry.access))

    def current(self) -> SourceRegistry:
        return self._registry

    def reload(self) -> bool:
        try:
            registry = self._load()
        except Exception as error:  # the loader talks to the case API: any failure keeps the last registry
            log.warning("source registry reload failed; keeping the previous one", error=str(error))
            return False
        changed = {entry.source for entry in registry.access} != {entry.source for entry in self._registry.access}
        self._registry = registry
        self.reloads += 1
        # a line every reload would bury the log: say it when the sources changed
        (log.info if changed else log.debug)("source registry loaded", sources=len(registry.access),
                                             reloads=self.reloads)
        return True

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Reload until `stop` is set (then call `wake` so the wait ends at once)."""
        while not stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            if not stop.is_set():
                self.reload()
