"""Small ECS event builders and a lake writer for correlator tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from citysoc.store.parquet import ParquetEventStore
from correlator.compiler import RuleCompiler
from correlator.engine.matching import match
from correlator.engine.session import engine_options
from correlator.model import CompiledRule, CompiledRuleSet

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def cloudtrail(event_id: str, action: str, *, provider: str = "cloudtrail.amazonaws.com", at: datetime = T0,
               tenant: str = "acme", request: Mapping[str, Any] | None = None, user: str | None = "alice",
               user_type: str = "IAMUser", source_ip: str | None = "198.51.100.1", error_code: str | None = None,
               account: str = "111122223333") -> dict[str, Any]:
    return {
        "@timestamp": at,
        "organization": {"id": tenant},
        "event": {"id": event_id, "dataset": "aws.cloudtrail", "action": action, "provider": provider,
                  "original": json.dumps({"eventName": action, "eventSource": provider})},
        "source": {"ip": source_ip, "address": source_ip},
        "user": {"name": user},
        "cloud": {"account": {"id": account}, "region": "eu-west-2"},
        "aws": {"cloudtrail": {
            "request_parameters": json.dumps(request) if request is not None else None,
            "error_code": error_code,
            "user_identity": {"type": user_type, "user_name": user},
        }},
    }


def ssh(event_id: str, ssh_event: str, *, ip: str, user: str = "root", at: datetime = T0, tenant: str = "acme",
        host: str = "web01") -> dict[str, Any]:
    verb = {"Failed": "Failed password for", "Accepted": "Accepted password for"}.get(ssh_event, ssh_event)
    return {
        "@timestamp": at,
        "organization": {"id": tenant},
        "message": f"{verb} {user} from {ip} port 22 ssh2",
        "event": {"id": event_id, "dataset": "system.auth",
                  "outcome": "success" if ssh_event == "Accepted" else "failure"},
        "process": {"name": "sshd"},
        "host": {"name": host},
        "source": {"ip": ip},
        "user": {"name": user},
        "system": {"auth": {"ssh": {"event": ssh_event}}},
    }


def failures(count: int, *, ip: str, every: timedelta, start: datetime = T0, tenant: str = "acme",
             prefix: str = "f") -> list[dict[str, Any]]:
    return [ssh(f"{prefix}{i}", "Failed", ip=ip, at=start + every * i, tenant=tenant) for i in range(count)]


def lake(root: Path) -> ParquetEventStore:
    """The Parquet event store of a test's folder (`root / "events"`, where `write_lake` writes)."""
    return ParquetEventStore(root / "events")


def write_lake(events_dir: Path, docs: Iterable[Mapping[str, Any]]) -> None:
    """Write docs to a Parquet lake, grouped by their tenant and dataset."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for doc in docs:
        groups.setdefault((doc["organization"]["id"], doc["event"]["dataset"]), []).append(doc)
    store = ParquetEventStore(events_dir)
    for (tenant, dataset), events in groups.items():
        store.write(tenant=tenant, dataset=dataset, events=events)


def matched(events: DataFrame, rules: Iterable[CompiledRule], **changes: Any) -> DataFrame:
    """The engine's matches of `rules` on `events` with the session's options, `changes` applied
    (`EngineOptions` fields, e.g. `routing=False`)."""
    return match(events, list(rules), engine_options(events.sparkSession, **changes))


def compile_text(folder: Path, text: str) -> CompiledRuleSet:
    """Rules written as YAML text (documents separated by `---`), compiled without Spark; every one must compile."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yml").write_text(text, encoding="utf-8")
    ruleset = RuleCompiler().compile([folder])
    assert ruleset.unsupported == [], ruleset.unsupported
    return ruleset
