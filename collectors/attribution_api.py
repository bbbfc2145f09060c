"""The intake's view of the case API's sources: the `SourceRegistry` that attributes senders, and the data-health
line each drained batch leaves for its source.

`registry_from` reads `GET /api/v1/sources/access` through `citysoc.caseclient.CaseClient` with a service (or
admin) key: digests and fingerprints, never tokens. Build it again to pick up sources added since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, cast, get_args

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from citysoc.caseclient import CaseClient
from citysoc.health import HealthStore
from citysoc.store import WriteResult
from collectors.attribution import SourceAccess, SourceRef, SourceRegistry, Transport, networks
from collectors.records import ParsedBatch, latest_received
from collectors.spool import SpoolBatch

log = structlog.get_logger(__name__)

_TRANSPORTS: frozenset[str] = frozenset(get_args(Transport))


def registry_from(client: CaseClient) -> SourceRegistry:
    """Every registered source, as the intake resolves senders to them."""
    return SourceRegistry.of(source_access(entry) for entry in client.source_access())


def source_access(entry: Mapping[str, Any]) -> SourceAccess:
    """One entry of `GET /sources/access` as a `SourceAccess`. A transport this intake does not know is left
    out, so a newer case API never makes an older intake accept what it cannot check."""
    source = SourceRef(id=int(entry["id"]), tenant=str(entry["tenant_id"]), name=str(entry["name"]),
                       kind=str(entry["kind"]), parser=str(entry["parser"]),
                       cloud_accounts=tuple(str(account) for account in entry.get("cloud_accounts") or ()))
    transports = frozenset(cast(Transport, t) for t in entry.get("transports") or () if t in _TRANSPORTS)
    settings = entry.get("pull") or {}
    account, audience = settings.get("push_service_account"), settings.get("push_audience")
    return SourceAccess(source, transports, networks(entry.get("networks") or ()),
                        token_sha256=entry.get("token_sha256"), certificate_sha256=entry.get("certificate_sha256"),
                        push_identity=(str(account), str(audience)) if account and audience else None)


def health_recorder(health: HealthStore,
                    registry: Callable[[], SourceRegistry]) -> Callable[[SpoolBatch, ParsedBatch, WriteResult], None]:
    """A `Drainer.on_stored` callback writing one data-health line per drained batch, under the source the
    intake attributed it to (`SpoolBatch.source_id`). A batch spooled without one (an older spool) counts for
    the tenant's one listener source with its parser; with several candidates it is not recorded (logged
    once). `registry` returns the intake's current registry (the one it attributes with)."""
    ambiguous: set[tuple[str, str]] = set()

    def source_of(batch: SpoolBatch) -> int | None:
        if batch.source_id is not None:
            return batch.source_id
        candidates = [entry.source.id for entry in registry().access if entry.transports
                      and entry.source.tenant == batch.tenant and entry.source.parser == batch.source]
        if len(candidates) == 1:
            return candidates[0]
        if (batch.tenant, batch.source) not in ambiguous:
            ambiguous.add((batch.tenant, batch.source))
            log.warning("data health not recorded: the batch's source is not known", tenant=batch.tenant,
                        parser=batch.source, candidates=candidates)
        return None

    def record(batch: SpoolBatch, parsed: ParsedBatch, written: WriteResult) -> None:
        source_id = source_of(batch)
        if source_id is None:
            return
        last_dead = parsed.dead[-1] if parsed.dead else None
        health.record(source_id=source_id, tenant=batch.tenant, events=written.stored + written.duplicates,
                      dead=len(parsed.dead), last_event_time=newest_event_time(parsed.tables.values()),
                      last_dead_reason=last_dead.reason if last_dead else None,
                      last_dead_origin=last_dead.origin if last_dead else "",
                      received=latest_received(batch.records))

    return record


def newest_event_time(tables: Iterable[pa.Table]) -> datetime | None:
    """The newest `@timestamp` among the tables' events (None when there are none)."""
    newest: datetime | None = None
    for table in tables:
        if table.num_rows and "@timestamp" in table.column_names:
            value = pc.max(table.column("@timestamp")).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    return newest
