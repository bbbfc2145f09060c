"""Alerts: their shape, their deterministic ids, and the Parquet alert store.

Layout: `<alerts_dir>/tenant=<tenant>/part-<uuid>.parquet` with columns `id`, `@timestamp`,
`rule_id`, `kind` and `doc` (the alert as JSON, exactly the dict `read_alerts` returns). Only ids not
stored yet are written, so running detection again over the same events adds nothing.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from citysoc.ids import alert_id, window_alert_id
from correlator.model import ENTITY_FIELDS, CompiledRule

ALERT_SCHEMA = pa.schema([
    ("id", pa.string()), ("@timestamp", pa.string()), ("rule_id", pa.string()), ("kind", pa.string()),
    ("doc", pa.string()),
])
ENTITY_ORDER: tuple[str, ...] = ENTITY_FIELDS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_from_micros(micros: int) -> str:
    """Epoch microseconds -> `2026-01-02T03:04:05.678Z` (UTC, millisecond precision, fixed width)."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rule_block(rule: CompiledRule) -> dict[str, Any]:
    return {"id": rule.id, "title": rule.title, "level": rule.level, "tags": list(rule.tags), "kind": rule.kind}


def _incident(rule: CompiledRule) -> dict[str, Any]:
    """`incident`: how the case API groups this rule's alerts into cases (its group-by fields, `citysoc: window`)."""
    block: dict[str, Any] = {}
    if rule.group_by:
        block["group_by"] = [name for name, _ in rule.group_by]
    if rule.incident_window_seconds is not None:
        block["window_seconds"] = rule.incident_window_seconds
    return {"incident": block} if block else {}


def _entities(values: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {name: list(values[name]) for name in ENTITY_ORDER if values.get(name)}


def detection_alert(rule: CompiledRule, *, tenant: str, dataset: str, event_id: str, ts_us: int,
                    entities: Mapping[str, Sequence[str]], group_key: str) -> dict[str, Any]:
    """One alert per (detection rule, matched event)."""
    return {
        "id": alert_id(tenant=tenant, rule_id=rule.id, event_ids=[event_id]),
        "@timestamp": iso_from_micros(ts_us),
        "organization": {"id": tenant},
        "rule": _rule_block(rule),
        "event": {"ids": [event_id], "count": 1, "dataset": dataset},
        "entities": _entities(entities),
        "group_key": group_key,
        "message": f"{rule.title} ({group_key})",
    } | _incident(rule)


def correlation_alert(rule: CompiledRule, *, tenant: str, datasets: Sequence[str], group_key: str,
                      window_start_us: int, window_end_us: int, event_ids: Sequence[str], count: int,
                      entities: Mapping[str, Sequence[str]], last_event_us: int | None = None) -> dict[str, Any]:
    """One alert per correlation burst; the id depends on tenant, group and window start only.

    `@timestamp` is the window's start; `event.end` is the burst's last event (what a case's last activity is).
    """
    start = iso_from_micros(window_start_us)
    event: dict[str, Any] = {"ids": list(event_ids), "count": count, "dataset": ",".join(datasets)}
    if last_event_us is not None:
        event["end"] = iso_from_micros(last_event_us)
    return {
        "id": window_alert_id(tenant=tenant, rule_id=rule.id, group_key=group_key, window_start=start),
        "@timestamp": start,
        "organization": {"id": tenant},
        "rule": _rule_block(rule),
        "event": event,
        "entities": _entities(entities),
        "group_key": group_key,
        "window": {"start": start, "end": iso_from_micros(window_end_us)},
        "message": f"{rule.title}: {count} events for {group_key} from {start}",
    } | _incident(rule)


@contextmanager
def _locked(alerts_dir: Path) -> Iterator[None]:
    alerts_dir.mkdir(parents=True, exist_ok=True)
    with open(alerts_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time: the anti-join must see every id
        yield


def _files(alerts_dir: Path, tenant: str | None) -> list[Path]:
    root = alerts_dir / f"tenant={tenant}" if tenant else alerts_dir
    return sorted(root.rglob("part-*.parquet")) if root.exists() else []


def stored_alert_ids(alerts_dir: Path) -> set[str]:
    ids: set[str] = set()
    for path in _files(alerts_dir, None):
        ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return ids


def store_new_alerts(alerts_dir: Path, alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Write the alerts whose id is not stored yet; return those (the new alerts) in input order."""
    with _locked(alerts_dir):
        known = stored_alert_ids(alerts_dir)
        new: list[dict[str, Any]] = []
        for alert in alerts:
            if alert["id"] not in known:
                known.add(alert["id"])
                new.append(dict(alert))
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for alert in new:
            by_tenant.setdefault(alert["organization"]["id"], []).append(alert)
        for tenant, rows in by_tenant.items():
            directory = alerts_dir / f"tenant={tenant}"
            directory.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist([
                {"id": a["id"], "@timestamp": a["@timestamp"], "rule_id": a["rule"]["id"], "kind": a["rule"]["kind"],
                 "doc": orjson.dumps(a).decode()} for a in rows
            ], schema=ALERT_SCHEMA)
            final = directory / f"part-{uuid.uuid4().hex}.parquet"
            partial = final.with_suffix(".parquet.tmp")
            pq.write_table(table, partial, compression="zstd")
            partial.rename(final)
        return new


def read_alerts(alerts_dir: Path, tenant: str | None = None) -> list[dict[str, Any]]:
    """Stored alerts (optionally of one tenant), ordered by time then id; no Spark needed."""
    alerts: list[dict[str, Any]] = []
    for path in _files(alerts_dir, tenant):
        alerts.extend(orjson.loads(doc) for doc in pq.read_table(path, columns=["doc"]).column("doc").to_pylist())
    return sorted(alerts, key=lambda a: (a["@timestamp"], a["id"]))
