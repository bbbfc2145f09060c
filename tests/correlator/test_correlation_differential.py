"""Differential test of correlation rules: our engine against pySigma's sqlite backend on the same events.

Every Sigma correlation type, `aliases`, a chained correlation and `generate` are written once as Sigma
rules. sqlite side: the events as rows of one table (dotted ECS column names, `TEXT COLLATE NOCASE`,
ISO timestamps), each correlation converted by pysigma-backend-sqlite and run as its own query. Spark
side: the same events written to a Parquet lake and detected by `run_detection`. Both must agree on
which groups each correlation fires for, and on which rules raise alerts of their own.

The two anchor their sliding windows differently: sqlite looks back from every match
([t - timespan, t], one result per qualifying window), we look ahead ([t, t + timespan]) and merge
qualifying windows into bursts. For measures that only grow as matches join a window (counts,
distinct values and rules, ordered chains, sums of non-negative numbers) a group fires in one exactly
when it fires in the other, on any data. Averages and percentiles can rise and fall, so a window's
suffixes (ours) and prefixes (sqlite's) may disagree; their events come in isolated clusters that read
the same forwards and backwards (times and values mirrored), where every suffix has a prefix with the
same values, so the semantics agree there. Group keys use lower-case values, which sqlite folds.
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from correlator.compiler import RuleCompiler
from correlator.engine.detection import run_detection
from tests.correlator.builders import lake, write_lake

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SPAN_S = 300

BASE = """
title: diff {name}
id: {id}
name: {name}
status: test
logsource: {{product: linux, service: auth}}
detection:
    selection:
        system.auth.ssh.event: {value}
    condition: selection
level: low
"""
BASE_RULES = {  # name -> (id, system.auth.ssh.event)
    "diff_failed": ("0b6f0d52-5d0a-4a43-9a55-5f3d3c6f1a01", "Failed"),
    "diff_accepted": ("0b6f0d52-5d0a-4a43-9a55-5f3d3c6f1a02", "Accepted"),
    "diff_invalid": ("0b6f0d52-5d0a-4a43-9a55-5f3d3c6f1a03", "Invalid"),
    "diff_metric": ("0b6f0d52-5d0a-4a43-9a55-5f3d3c6f1a04", "Metric"),
}
CORRELATIONS = """
title: diff event_count
id: 7a1e0c3e-0000-4000-8000-000000000001
correlation: {type: event_count, rules: [diff_failed], group-by: [source.ip], timespan: 5m, condition: {gte: 6}}
level: high
---
title: diff value_count
id: 7a1e0c3e-0000-4000-8000-000000000002
correlation:
    type: value_count
    rules: [diff_failed]
    group-by: [source.ip]
    timespan: 5m
    condition: {field: user.name, gte: 4}
level: high
---
title: diff temporal with aliases
id: 7a1e0c3e-0000-4000-8000-000000000003
correlation:
    type: temporal
    rules: [diff_failed, diff_accepted, diff_invalid]
    group-by: [ip]
    timespan: 5m
    aliases:
        ip: {diff_failed: source.ip, diff_accepted: source.ip, diff_invalid: destination.ip}
level: high
---
title: diff temporal_ordered
id: 7a1e0c3e-0000-4000-8000-000000000004
correlation: {type: temporal_ordered, rules: [diff_failed, diff_accepted], group-by: [source.ip], timespan: 5m}
level: high
---
title: diff value_sum
id: 7a1e0c3e-0000-4000-8000-000000000005
correlation:
    type: value_sum
    rules: [diff_failed]
    group-by: [source.ip]
    timespan: 5m
    condition: {field: source.port, gte: 220000}
level: high
---
title: diff value_avg
id: 7a1e0c3e-0000-4000-8000-000000000006
correlation:
    type: value_avg
    rules: [diff_metric]
    group-by: [source.ip]
    timespan: 5m
    generate: true
    condition: {field: source.port, gte: 600}
level: high
---
title: diff value_percentile
id: 7a1e0c3e-0000-4000-8000-000000000007
correlation:
    type: value_percentile
    rules: [diff_metric]
    group-by: [source.ip]
    timespan: 5m
    generate: true
    condition: {field: source.port, percentile: 90, gte: 850}
level: high
---
title: diff burst
id: 7a1e0c3e-0000-4000-8000-000000000008
name: diff_burst
correlation: {type: event_count, rules: [diff_failed], group-by: [source.ip], timespan: 5m, condition: {gte: 5}}
level: medium
---
title: diff chained burst then accepted
id: 7a1e0c3e-0000-4000-8000-000000000009
correlation: {type: temporal_ordered, rules: [diff_burst, diff_accepted], group-by: [source.ip], timespan: 10m}
level: critical
"""


def rule_text() -> str:
    bases = [BASE.format(name=name, id=rule_id, value=value) for name, (rule_id, value) in BASE_RULES.items()]
    return "\n---\n".join([*bases, CORRELATIONS])


# --- events --------------------------------------------------------------------------------------------

def _event(serial: int, kind: str, at: float, *, ip: str, user: str, port: int, destination: str | None = None,
           ) -> dict[str, Any]:
    return {"@timestamp": T0 + timedelta(seconds=at), "organization": {"id": "diff"},
            "event": {"id": f"d{serial:05d}", "dataset": "system.auth"}, "message": f"{kind} from {ip}",
            "process": {"name": "sshd"}, "source": {"ip": ip, "port": port},
            "destination": {"ip": destination}, "user": {"name": user},
            "system": {"auth": {"ssh": {"event": kind}}}}


def events(seed: int) -> list[dict[str, Any]]:
    """Random sshd-like traffic per source (counts, users, ports, order), and mirrored metric clusters."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for host in range(60):
        ip = f"10.0.{host // 250}.{host % 250 + 1}"
        for _ in range(rng.randint(1, 3)):  # a few clusters an hour apart, each within about a timespan
            centre = rng.randrange(0, 6) * 3600
            for _ in range(rng.randint(1, 12)):
                at = centre + rng.randint(0, 420)
                kind = rng.choices(["Failed", "Accepted", "Invalid"], weights=[7, 2, 1])[0]
                user = rng.choice(["root", "admin", "oracle", "test", "guest", "pi"])
                port = rng.randint(20000, 60000)
                if kind == "Invalid":  # seen at the address, from elsewhere: the alias reads destination.ip
                    docs.append(_event(len(docs), kind, at, ip="192.0.2.1", user=user, port=port, destination=ip))
                else:
                    docs.append(_event(len(docs), kind, at, ip=ip, user=user, port=port))
    for host in range(40):
        ip = f"10.9.0.{host + 1}"
        for cluster in range(rng.randint(1, 3)):
            start = cluster * 2000
            size = rng.randint(1, 6)
            extent = rng.randint(0, 240)
            offsets = sorted(rng.randint(0, extent) for _ in range(size // 2))
            values = [rng.randint(0, 1000) for _ in range(size // 2)]
            middle = [(extent / 2, rng.randint(0, 1000))] if size % 2 else []
            mirrored = ([(o, v) for o, v in zip(offsets, values, strict=True)] + middle
                        + [(extent - o, v) for o, v in zip(reversed(offsets), reversed(values), strict=True)])
            for offset, value in mirrored:
                docs.append(_event(len(docs), "Metric", start + offset, ip=ip, user="svc", port=value))
    return docs


# --- sqlite (pySigma's backend) ------------------------------------------------------------------------

COLUMNS = ("@timestamp", "event.id", "system.auth.ssh.event", "source.ip", "source.port", "destination.ip",
           "user.name")


def _row(doc: dict[str, Any]) -> tuple[Any, ...]:
    stamp = doc["@timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (stamp, doc["event"]["id"], doc["system"]["auth"]["ssh"]["event"], doc["source"]["ip"],
            doc["source"]["port"], doc["destination"]["ip"], doc["user"]["name"])


def sqlite_results(collection: SigmaCollection, docs: list[dict[str, Any]]) -> tuple[dict[str, set[Any]], set[str]]:
    """Correlation id -> groups its query returns; and the ids of the rules with output of their own."""
    backend = sqliteBackend(collate_nocase=True, timestamp_field="@timestamp", event_id_field="event.id")
    connection = sqlite3.connect(":memory:")
    columns = ", ".join(f'"{name}" {"INTEGER" if name == "source.port" else "TEXT COLLATE NOCASE"}'
                        for name in COLUMNS)
    connection.execute(f"CREATE TABLE logs ({columns})")
    connection.executemany(f"INSERT INTO logs VALUES ({', '.join('?' for _ in COLUMNS)})", map(_row, docs))
    fired: dict[str, set[Any]] = {}
    outputs: set[str] = set()
    for rule in collection.rules:  # base rules first: a correlation's query embeds theirs
        if isinstance(rule, SigmaCorrelationRule):
            continue
        if backend.convert_rule(rule):
            outputs.add(str(rule.id))
    for rule in collection.rules:
        if not isinstance(rule, SigmaCorrelationRule):
            continue
        queries = backend.convert_correlation_rule(rule)
        if not queries:
            continue  # referenced without `generate`: no query of its own
        outputs.add(str(rule.id))
        [query] = queries
        fired[str(rule.id)] = {frozenset(json.loads(row[1]).items()) for row in connection.execute(query)}
    connection.close()
    return fired, outputs


# --- the comparison ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_every_correlation_type_fires_for_the_same_groups_as_sqlite(spark: Any, tmp_path: Path, seed: int) -> None:
    text = rule_text()
    docs = events(seed)
    fired_sqlite, outputs_sqlite = sqlite_results(SigmaCollection.from_yaml(text), docs)

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yml").write_text(text, encoding="utf-8")
    ruleset = RuleCompiler(spark).compile([folder])
    assert ruleset.unsupported == []
    write_lake(tmp_path / "events", docs)
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)
    fired_spark: dict[str, set[Any]] = {}
    for alert in result.alerts:
        if alert["rule"]["kind"] == "correlation":
            groups = frozenset(tuple(part.split("=", 1)) for part in alert["group_key"].split(","))
            fired_spark.setdefault(alert["rule"]["id"], set()).add(groups)
    outputs_spark = {rule.id for rule in ruleset.rules if rule.generate}

    assert outputs_spark == outputs_sqlite  # generate: the same rules raise alerts of their own
    assert str(BASE_RULES["diff_metric"][0]) in outputs_spark  # referenced only by `generate: true` rules
    assert "7a1e0c3e-0000-4000-8000-000000000008" not in outputs_spark  # the chained burst is silent
    for rule_id, groups in fired_sqlite.items():
        spark_groups = fired_spark.get(rule_id, set())
        title = ruleset.by_id(rule_id).title
        print(f"{title}: sqlite {len(groups)} groups, spark {len(spark_groups)}")
        assert spark_groups == groups, title
        assert groups, f"{title}: the data should make it fire for some group"
    assert set(fired_spark) <= set(fired_sqlite)
    assert len(fired_sqlite) == 8  # every correlation but the silent burst
