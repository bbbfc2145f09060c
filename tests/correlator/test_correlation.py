"""Correlation windows (every type) against a plain Python reference of the documented semantics.

The reference follows `correlator/correlation.py`'s module docstring literally (candidate window per
match, bursts chained by qualifying starts within the timespan, members listed in time order); the
Spark implementation computes the same with window functions. Random but seeded inputs with ties,
several tenants and groups, and every comparison operator.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from dataclasses import replace
from typing import Any

import pytest

from correlator.engine.correlation import (
    _OPS,
    _matches_that_can_qualify,
    correlation_windows,
    every_burst,
    hot_bucket_bound,
    hot_bucket_probe,
    hot_buckets,
    near_hot_buckets,
)
from correlator.engine.detection import correlation_alerts
from correlator.engine.events import ENTITY_COLUMNS
from correlator.errors import RuleLocation
from correlator.model import CompiledRule, CorrelationSpec
from correlator.sql import Condition

SPAN_S = 60


NUMERIC = ("value_sum", "value_avg", "value_percentile", "value_median")
TEMPORAL = ("temporal", "temporal_ordered")


def _rule(kind: str, op: str, count: float, percentile: float | None = None) -> CompiledRule:
    valued = kind == "value_count" or kind in NUMERIC
    spec = CorrelationSpec(type=kind, rule_ids=("a", "b", "c") if kind in TEMPORAL else ("base",),
                           group_by=("source.ip",), group_exprs=("_source_ip",),
                           timespan_seconds=SPAN_S, op=op, count=count,
                           value_field="user.name" if valued else None, value_expr="_user_name" if valued else None,
                           percentile=50.0 if kind == "value_median" else percentile)
    return CompiledRule(id=f"corr-{kind}-{op}-{count}", title="t", level="high", tags=(), datasets=("system.auth",),
                        condition=Condition.text(""), location=RuleLocation(), kind="correlation", correlation=spec)


def _inputs(seed: int, kind: str = "event_count") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for number in range(400):
        tenant = rng.choice(["acme", "beta"])
        ip = rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        # clustered seconds with ties: bursts, gaps longer than the span, and equal timestamps; a sparse
        # stretch where few windows qualify (the matches the bucket prefilter drops before sorting)
        second = rng.choice([rng.randrange(0, 120), rng.randrange(500, 560), rng.randrange(2000, 2400),
                             rng.randrange(5000, 50000)])
        user = rng.choice(["root", "admin", "alice", "bob", "carol", "dave"])
        value = str(rng.choice([0, 1, 2, 5, 10, 40, 100])) if kind in NUMERIC else user
        rule_id = rng.choice(["a", "b", "c"]) if kind in TEMPORAL else "base"
        rows.append({"_tenant": tenant, "_event_id": f"e{number:04d}", "_ts_us": second * 1_000_000,
                     "_dataset": "system.auth", "_group_key": f"source.ip={ip}", "_group_values": [ip],
                     "_value": value, "_rule_id": rule_id, "_slot": "abc".index(rule_id) if kind in TEMPORAL else 0,
                     "_user_name": user, "_source_ip": ip, "_host_name": "web01", "_cloud_account_id": None})
    return rows


def _percentile(values: list[float], p: float) -> float:
    """Linear interpolation between the closest ranks (Spark's `percentile`, pySigma sqlite's)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _longest_chain(members: list[dict[str, Any]]) -> int:
    """Longest run of rules in the rule's order at strictly increasing times (quadratic, plain)."""
    best: list[int] = []
    for i, row in enumerate(members):
        best.append(1 + max((best[j] for j in range(i) if members[j]["_ts_us"] < row["_ts_us"]
                             and members[j]["_slot"] < row["_slot"]), default=0))
    return max(best, default=0)


def measure(spec: CorrelationSpec, inside: list[dict[str, Any]]) -> float:
    numbers = [float(m["_value"]) for m in inside] if spec.type in NUMERIC else []
    return {
        "event_count": lambda: len(inside),
        "value_count": lambda: len({m["_value"] for m in inside}),
        "value_sum": lambda: sum(numbers),
        "value_avg": lambda: sum(numbers) / len(numbers),
        "value_percentile": lambda: _percentile(numbers, spec.percentile or 0),
        "value_median": lambda: _percentile(numbers, 50),
        "temporal": lambda: len({m["_slot"] for m in inside}),
        "temporal_ordered": lambda: _longest_chain(sorted(inside, key=lambda m: m["_ts_us"])),
    }[spec.type]()


def reference(rows: list[dict[str, Any]], rule: CompiledRule) -> set[tuple[Any, ...]]:
    spec = rule.correlation
    assert spec is not None
    span = spec.timespan_seconds * 1_000_000
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["_tenant"], row["_group_key"])].append(row)
    found = set()
    for (tenant, key), members in groups.items():
        members.sort(key=lambda r: (r["_ts_us"], r["_event_id"]))
        starts = []
        for row in members:  # step 2: the window [t, t + span] of every match
            inside = [m for m in members if row["_ts_us"] <= m["_ts_us"] <= row["_ts_us"] + span]
            if _OPS[spec.op](measure(spec, inside), spec.count):
                starts.append(row["_ts_us"])
        bursts: list[list[int]] = []  # step 3: qualifying starts within `span` of the previous one chain
        for start in sorted(set(starts)):
            if bursts and start - bursts[-1][-1] <= span:
                bursts[-1].append(start)
            else:
                bursts.append([start])
        for burst in bursts:  # step 4: the matches inside [first start, last start + span]
            end = burst[-1] + span
            inside = [m for m in members if burst[0] <= m["_ts_us"] <= end]
            ids = tuple(m["_event_id"] for m in sorted(inside, key=lambda m: (m["_ts_us"], m["_event_id"])))
            found.add((tenant, key, burst[0], end, len(inside), ids))
    return found


@pytest.mark.parametrize(("kind", "op", "count", "percentile"), [
    ("event_count", "gte", 5, None), ("event_count", "gt", 8, None), ("event_count", "eq", 3, None),
    ("event_count", "lt", 2, None), ("value_count", "gte", 3, None), ("value_count", "gte", 5, None),
    ("value_count", "lte", 1, None), ("value_sum", "gte", 150, None), ("value_sum", "lt", 3, None),
    ("value_avg", "gt", 30.5, None), ("value_avg", "lte", 1.5, None), ("value_percentile", "gte", 60.5, 90),
    ("value_median", "gte", 7.5, None), ("temporal", "gte", 3, None), ("temporal", "eq", 2, None),
    ("temporal_ordered", "gte", 3, None), ("temporal_ordered", "gte", 2, None), ("temporal_ordered", "lt", 2, None),
])
def test_windows_equal_the_reference(spark: Any, kind: str, op: str, count: float, percentile: float | None) -> None:
    rows = _inputs(seed=zlib.crc32(f"{kind}{op}{count}".encode()), kind=kind)
    rule = _rule(kind, op, count, percentile)
    frame = _frame(spark, rows, numeric=kind in NUMERIC)
    expected = reference(rows, rule)
    assert expected, "the seeded input should raise at least one burst"
    assert _bursts(correlation_windows(frame, rule, max_event_ids=1000)) == expected
    probe = hot_bucket_probe(frame, rule)
    assert (probe is None) == (op not in ("gte", "gt") or kind in NUMERIC)
    if probe is not None:  # `correlation_alerts`' path: only the matches near a hot bucket are windowed
        hot = [(row["_key"], row["_bucket"]) for row in hot_buckets({rule.id: probe}).collect()]
        near = near_hot_buckets(frame, rule, hot)
        if count >= 3:  # the sparse stretch is left out (below that, one match a bucket makes it hot)
            assert near.count() < frame.count()
        assert _bursts(correlation_windows(near, rule, max_event_ids=1000)) == expected
        assert _bursts(correlation_windows(near, rule, max_event_ids=1000, prefilter=False)) == expected


_COLUMNS = ["_tenant", "_event_id", "_ts_us", "_dataset", "_group_key", "_group_values", "_value", "_rule_id",
            "_slot", *ENTITY_COLUMNS.values()]


def _frame(spark: Any, rows: list[dict[str, Any]], *, numeric: bool = False) -> Any:
    """Rows as `correlation_input` gives them (entities as arrays; `numeric`: values as numbers)."""
    entities = len(ENTITY_COLUMNS)
    frame = spark.createDataFrame(
        [tuple(row.get(c) for c in _COLUMNS[:-entities])
         + tuple([row[c]] if row.get(c) else [] for c in _COLUMNS[-entities:]) for row in rows],
        "_tenant string, _event_id string, _ts_us long, _dataset string, _group_key string, "
        "_group_values array<string>, _value string, _rule_id string, _slot int, "
        + ", ".join(f"{column} array<string>" for column in ENTITY_COLUMNS.values()))
    return frame.withColumn("_value", frame["_value"].cast("double")) if numeric else frame


def _bursts(windows: Any) -> set[tuple[Any, ...]]:
    return {(r["_tenant"], r["_group_key"], r["_burst_start"], r["_burst_end"], r["_count"],
             tuple(e["_event_id"] for e in r["_events"])) for r in windows.collect()}


def test_correlation_alerts_probe_hot_buckets_first(spark: Any) -> None:
    """A burst split evenly over a bucket edge is found; a correlation with no hot bucket raises nothing."""
    span = SPAN_S * 1_000_000
    edge = _rule("event_count", "gte", 4)
    sparse = replace(_rule("event_count", "gte", 5), id="corr-sparse")
    split = [span - 2, span - 1, span, span + 1]  # buckets 0, 0, 1, 1: two matches a bucket, four a window
    lonely = [5 * span, 8 * span, 11 * span, 14 * span]
    rows = [{"_tenant": "acme", "_event_id": f"e{n}", "_ts_us": ts, "_dataset": "system.auth",
             "_group_key": "source.ip=10.0.0.1", "_source_ip": "10.0.0.1"} for n, ts in enumerate(split + lonely)]
    probe = hot_bucket_probe(_frame(spark, rows), edge)
    assert probe is not None and {row["_bucket"] for row in hot_buckets({edge.id: probe}).collect()} == {0, 1}
    alerts = correlation_alerts({edge.id: [_frame(spark, rows)], sparse.id: [_frame(spark, rows)]},
                                {edge.id: edge, sparse.id: sparse})
    assert [(a["rule"]["id"], a["event"]["ids"]) for a in alerts] == [(edge.id, ["e0", "e1", "e2", "e3"])]
    assert correlation_alerts({sparse.id: [_frame(spark, rows)]}, {sparse.id: sparse}) == []
    # one aggregation for both probes, each with its own threshold: two a bucket is half of 4, not of 5
    sparse_probe = hot_bucket_probe(_frame(spark, rows), sparse)
    assert sparse_probe is not None
    found = hot_buckets({edge.id: probe, sparse.id: sparse_probe}).collect()
    both = {(row["_rule_id"], row["_bucket"]) for row in found}
    assert both == {(edge.id, 0), (edge.id, 1)}
    # with the base rules' match counts, the hot buckets are bounded (here: 8 matches, 2 a hot bucket for
    # the threshold 4), collected without a limit, and the alerts are the same
    counts = {"base": len(rows)}
    assert hot_bucket_bound(edge, counts) == 4 >= len(both) and hot_bucket_bound(sparse, counts) == 2
    assert hot_bucket_bound(edge, {}) == 0
    assert correlation_alerts({edge.id: [_frame(spark, rows)], sparse.id: [_frame(spark, rows)]},
                              {edge.id: edge, sparse.id: sparse}, counts) == alerts
    # too many hot buckets to collect: every match is windowed
    assert correlation_alerts({edge.id: [_frame(spark, rows)], sparse.id: [_frame(spark, rows)]},
                              {edge.id: edge, sparse.id: sparse}, hot_buckets_max=0) == alerts
    assert correlation_alerts({edge.id: [_frame(spark, rows)], sparse.id: [_frame(spark, rows)]},
                              {edge.id: edge, sparse.id: sparse}, counts, hot_buckets_max=0) == alerts


def test_bucket_prefilter_keeps_every_match_a_qualifying_window_can_hold(spark: Any) -> None:
    """Matches of dense pairs of buckets stay (even across a bucket edge), lone ones go."""
    rule = _rule("event_count", "gte", 3)
    assert rule.correlation is not None
    span = SPAN_S * 1_000_000
    rows = [("acme", "e1", 0), ("acme", "e2", span - 1), ("acme", "e3", span),  # buckets 0, 0, 1: a pair of 3
            ("acme", "e4", 10 * span), ("acme", "e5", 12 * span + 5),  # lone matches
            ("beta", "e6", 10 * span + 1), ("beta", "e7", 11 * span), ("beta", "e8", 11 * span + 2)]  # other tenant
    frame = spark.createDataFrame([(t, e, ts, "source.ip=10.0.0.1", None) for t, e, ts in rows],
                                  "_tenant string, _event_id string, _ts_us long, _group_key string, _value string")
    kept = {row["_event_id"] for row in _matches_that_can_qualify(frame, rule.correlation).collect()}
    assert kept == {"e1", "e2", "e3", "e6", "e7", "e8"}


def test_every_burst_unions_each_correlations_bursts_with_its_rule_id(spark: Any) -> None:
    """What evidence and backtest count: every burst of every correlation, one frame, told apart by rule id."""
    rows = _inputs(7)
    rules = [_rule("event_count", "gte", 5), _rule("value_count", "gte", 3)]
    bursts = {rule.id: correlation_windows(_frame(spark, rows), rule) for rule in rules}
    found = every_burst(bursts, "_tenant", "_count")
    assert found is not None and found.columns == ["_rule_id", "_tenant", "_count"]
    expected = sorted((rule.id, tenant, count) for rule in rules
                      for tenant, _, _, _, count, _ in reference(rows, rule))
    assert expected and sorted((r["_rule_id"], r["_tenant"], r["_count"]) for r in found.collect()) == expected
    assert every_burst({}, "_tenant") is None
