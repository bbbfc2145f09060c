"""run_detection end to end on small Parquet lakes, through the real Spark engine."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from citysoc.ids import alert_id, window_alert_id
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from citysoc.store.parquet import day_range
from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
from correlator.engine.alerts import read_alerts
from correlator.engine.detection import read_events, run_detection
from correlator.engine.events import ENTITY_COLUMNS, window_condition
from correlator.engine.session import engine_options
from correlator.model import ENTITY_FIELDS, CompiledRuleSet
from tests.correlator.builders import T0, cloudtrail, failures, lake, matched, ssh, write_lake

pytestmark = pytest.mark.slow

DISABLE_LOGGING = "4db60cc0-36fb-42b7-9b58-a5b53019fb74"
BRUTE_FORCE = "db1db3c8-e14b-43ae-a194-b0f5242600c5"
ROOT_ACCEPTED = "39091651-5bbd-4fb2-8262-0fa30355f092"
SSH_FAILURE = "67e8ef0a-be01-4c25-9357-738a507ad525"
OWN_RULES_JSON_CIDR = """
title: Key created for bob
id: 66666666-6666-4666-8666-666666666666
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: CreateAccessKey, requestParameters.userName: bob}
    condition: selection
level: low
---
title: SSH from the 10/8 network
id: 77777777-7777-4777-8777-777777777777
logsource: {product: linux, service: sshd}
detection:
    selection: {source.ip|cidr: 10.0.0.0/8}
    condition: selection
level: low
---
title: SSH from outside 192.168/16
id: 88888888-8888-4888-8888-888888888888
logsource: {product: linux, service: sshd}
detection:
    selection: {source.ip|cidr: 192.168.0.0/16}
    condition: not selection
level: low
"""


@pytest.fixture(scope="module")
def own_rules(spark: Any) -> CompiledRuleSet:
    ruleset = RuleCompiler(spark).compile([DEFAULT_RULES_DIR])
    assert ruleset.unsupported == []
    return ruleset


def _ids(alerts: list[dict[str, Any]], rule_id: str) -> list[list[str]]:
    return [a["event"]["ids"] for a in alerts if a["rule"]["id"] == rule_id]


def test_sigmahq_disable_logging_rule_matches_stop_logging_only(spark: Any, corpora: Path, tmp_path: Path) -> None:
    rule_file = corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"
    ruleset = RuleCompiler(spark).compile([rule_file])
    write_lake(tmp_path / "events", [
        cloudtrail("e-stop", "StopLogging", at=T0),
        cloudtrail("e-describe", "DescribeTrails", at=T0 + timedelta(seconds=1)),
    ])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)
    assert result.events == {"aws.cloudtrail": 2}
    assert result.matches == {"aws.cloudtrail": {DISABLE_LOGGING: 1}}
    assert result.alerts == [{
        "id": alert_id(tenant="acme", rule_id=DISABLE_LOGGING, event_ids=["e-stop"]),
        "@timestamp": "2026-03-01T12:00:00.000Z",
        "organization": {"id": "acme"},
        "rule": {"id": DISABLE_LOGGING, "title": "AWS CloudTrail Important Change", "level": "medium",
                 "tags": ["attack.defense-impairment", "attack.t1685.002"], "kind": "detection"},
        "event": {"ids": ["e-stop"], "count": 1, "dataset": "aws.cloudtrail"},
        "entities": {"user.name": ["alice"], "source.ip": ["198.51.100.1"], "cloud.account.id": ["111122223333"]},
        "group_key": "user.name=alice",
        "message": "AWS CloudTrail Important Change (user.name=alice)",
    }]
    assert result.new_alerts == result.alerts
    assert read_alerts(tmp_path / "alerts") == result.alerts


def test_alerts_carry_indicator_entities_which_never_make_the_group_key(spark: Any, corpora: Path,
                                                                       tmp_path: Path) -> None:
    """User agent, domain, hash, e-mail and ASN (a long, as a string) are alert entities; the group key is
    still the first grouping entity, and an event with none of those is keyed by its id, not its agent."""
    rule_file = corpora / "sigmahq/rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml"
    ruleset = RuleCompiler(spark).compile([rule_file])
    indicators = {"user_agent": {"original": "evil-kit/2.1"}, "url": {"domain": "Login.Example.NET"},
                  "process": {"hash": {"sha256": "AB" * 32}}, "file": {"hash": {"sha256": "cd" * 32}}}
    with_user = cloudtrail("e-user", "StopLogging", at=T0)
    with_user["user"] |= {"email": "Alice@Example.org"}
    with_user["source"] |= {"as": {"number": 64500}, "domain": "vpn.example.net"}
    bare = cloudtrail("e-bare", "StopLogging", at=T0 + timedelta(seconds=1), user=None, source_ip=None)
    bare["cloud"] = {"region": "eu-west-2"}
    write_lake(tmp_path / "events", [with_user | indicators, bare | indicators])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)
    shared = {"user_agent.original": ["evil-kit/2.1"], "url.domain": ["Login.Example.NET"],
              "process.hash.sha256": ["AB" * 32], "file.hash.sha256": ["cd" * 32]}
    assert [(a["event"]["ids"], a["entities"], a["group_key"]) for a in result.alerts] == [
        (["e-user"], {"user.name": ["alice"], "source.ip": ["198.51.100.1"], "cloud.account.id": ["111122223333"],
                      "user.email": ["Alice@Example.org"], "source.domain": ["vpn.example.net"],
                      "source.as.number": ["64500"]} | shared, "user.name=alice"),
        (["e-bare"], shared, "event.id=e-bare"),
    ]
    assert list(result.alerts[0]["entities"])[:3] == ["user.name", "source.ip", "cloud.account.id"]


def test_entity_fields_no_file_of_the_read_fills_are_not_read(spark: Any, own_rules: CompiledRuleSet,
                                                              tmp_path: Path) -> None:
    """The lake's file footers say which entity fields no event of a read fills (those are not read); one
    that a single file of the read fills still reaches the alerts and bursts of that file's events."""
    plain = failures(5, ip="203.0.113.7", every=timedelta(seconds=10))
    named = failures(5, ip="203.0.113.7", every=timedelta(seconds=10), start=T0 + timedelta(seconds=50), prefix="g")
    for doc in named:
        doc["source"] |= {"domain": "scanner.example.net"}
    write_lake(tmp_path / "events", plain)
    write_lake(tmp_path / "events", named)  # a second file in the same folder
    store = lake(tmp_path)
    frame = store.read(spark, "system.auth")
    assert frame is not None and len(frame.inputFiles()) == 2
    filled = {"user.name", "source.ip", "host.name", "source.domain"}
    assert store.fields_without_values(frame, ENTITY_FIELDS) == set(ENTITY_FIELDS) - filled
    events = read_events(spark, store, "system.auth", deduplicate=False)
    assert events is not None
    assert {row["_event_id"]: row["_source_domain"] for row in events.collect()} == {
        **{doc["event"]["id"]: None for doc in plain}, **{doc["event"]["id"]: "scanner.example.net" for doc in named}}
    result = run_detection(spark, store=store, alerts_dir=tmp_path / "alerts", rules=own_rules)
    [burst] = [a for a in result.alerts if a["rule"]["id"] == BRUTE_FORCE]
    assert burst["event"]["count"] == 10
    assert burst["entities"] == {"user.name": ["root"], "source.ip": ["203.0.113.7"], "host.name": ["web01"],
                                 "source.domain": ["scanner.example.net"]}


def test_filled_fields_come_from_the_write_record_and_from_footers_only_for_files_without_one(
        spark: Any, tmp_path: Path) -> None:
    """The detector never opens a file the store wrote to learn what it fills (the write recorded it); a file
    copied into the lake by hand is asked its footer."""
    named = failures(3, ip="203.0.113.7", every=timedelta(seconds=10))
    for doc in named:
        doc["source"] |= {"domain": "scanner.example.net"}
    write_lake(tmp_path / "events", named)
    store = lake(tmp_path)
    [written] = sorted(store.events_dir.rglob("part-*.parquet"))
    written.write_bytes(b"not a parquet file")  # a footer read would fail: nothing would be known absent
    frame = store.read(spark, "system.auth")
    assert frame is not None
    filled = {"user.name", "source.ip", "host.name", "source.domain"}
    assert store.fields_without_values(frame, ENTITY_FIELDS) == set(ENTITY_FIELDS) - filled

    by_hand = ParquetEventStore(tmp_path / "elsewhere")
    by_hand.write(tenant="acme", dataset="system.auth", events=[
        cloudtrail("h-1", "StopLogging") | {"user_agent": {"original": "evil-kit/2.1"}}])
    shutil.copy(next((tmp_path / "elsewhere").rglob("part-*.parquet")), written.parent / "part-by-hand.parquet")
    frame = store.read(spark, "system.auth")
    assert frame is not None and len(frame.inputFiles()) == 2
    assert store.fields_without_values(frame, ENTITY_FIELDS) == set(ENTITY_FIELDS) - filled - {
        "user_agent.original", "cloud.account.id"}


def test_rerun_adds_no_alert_and_ids_are_deterministic(spark: Any, own_rules: CompiledRuleSet,
                                                       tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [
        *failures(12, ip="203.0.113.5", every=timedelta(seconds=10)),
        ssh("ok-root", "Accepted", ip="192.0.2.1", at=T0 + timedelta(minutes=1)),
        cloudtrail("ct-1", "StopLogging"),
    ])
    first = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    assert len(first.new_alerts) == 3 and first.new_alerts == first.alerts
    second = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    assert second.new_alerts == []
    assert [a["id"] for a in second.alerts] == [a["id"] for a in first.alerts]
    assert len(read_alerts(tmp_path / "alerts")) == 3
    elsewhere = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "other", rules=own_rules)
    assert elsewhere.new_alerts == first.alerts  # same ids in a fresh store
    # the datasets one after the other instead of side by side: the same matches and alerts
    sequential = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "seq", rules=own_rules,
                               options=engine_options(spark, parallel_datasets=1))
    assert (sequential.matches, sequential.alerts) == (first.matches, first.alerts)
    assert set(first.matches) == {"aws.cloudtrail", "system.auth"}


def test_json_fields_and_cidr_on_open_source_spark(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "own.yml").write_text(OWN_RULES_JSON_CIDR)
    ruleset = RuleCompiler(spark).compile([tmp_path / "rules"])
    assert ruleset.unsupported == []
    write_lake(tmp_path / "events", [
        cloudtrail("k-bob", "CreateAccessKey", request={"userName": "bob"}),
        cloudtrail("k-carol", "CreateAccessKey", request={"userName": "carol"}),
        cloudtrail("k-none", "CreateAccessKey", request=None),
        ssh("s-10", "Failed", ip="10.200.3.4"),
        ssh("s-11", "Failed", ip="11.0.0.1"),
        ssh("s-192", "Failed", ip="192.168.7.7"),
        ssh("s-bad", "Failed", ip="10.0.0.999"),
        ssh("s-v6", "Failed", ip="2001:db8::1"),
    ])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)
    assert _ids(result.alerts, "66666666-6666-4666-8666-666666666666") == [["k-bob"]]
    assert _ids(result.alerts, "77777777-7777-4777-8777-777777777777") == [["s-10"]]
    outside = sorted(i for ids in _ids(result.alerts, "88888888-8888-4888-8888-888888888888") for i in ids)
    assert outside == ["s-10", "s-11", "s-bad", "s-v6"]  # non-IPv4 values are "not in range", also under NOT


def test_event_count_fires_at_threshold_not_below(spark: Any, own_rules: CompiledRuleSet, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [
        *failures(10, ip="203.0.113.10", every=timedelta(seconds=30), prefix="a"),  # 10 within 4.5 min
        *failures(9, ip="203.0.113.9", every=timedelta(seconds=30), prefix="b"),  # 9
        *failures(10, ip="203.0.113.11", every=timedelta(seconds=34), prefix="c"),  # spans 5m06s
    ])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    [alert] = [a for a in result.alerts if a["rule"]["id"] == BRUTE_FORCE]
    assert alert == {
        "id": window_alert_id(tenant="acme", rule_id=BRUTE_FORCE, group_key="source.ip=203.0.113.10",
                              window_start="2026-03-01T12:00:00.000Z"),
        "@timestamp": "2026-03-01T12:00:00.000Z",
        "organization": {"id": "acme"},
        "rule": {"id": BRUTE_FORCE, "title": "SSH Brute Force From One Source", "level": "high",
                 "tags": ["attack.credential-access", "attack.t1110.001"], "kind": "correlation"},
        "event": {"ids": [f"a{i}" for i in range(10)], "count": 10, "dataset": "system.auth",
                  "end": "2026-03-01T12:04:30.000Z"},  # the last failure
        "entities": {"user.name": ["root"], "source.ip": ["203.0.113.10"], "host.name": ["web01"]},
        "group_key": "source.ip=203.0.113.10",
        "incident": {"group_by": ["source.ip"]},
        "window": {"start": "2026-03-01T12:00:00.000Z", "end": "2026-03-01T12:05:00.000Z"},
        "message": "SSH Brute Force From One Source: 10 events for source.ip=203.0.113.10 "
                   "from 2026-03-01T12:00:00.000Z",
    }
    assert result.matches["system.auth"]["67e8ef0a-be01-4c25-9357-738a507ad525"] == 29
    assert all(a["rule"]["kind"] == "correlation" for a in result.alerts)  # the base rule raises no alert


def test_since_until_restrict_matches(spark: Any, own_rules: CompiledRuleSet, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [
        ssh(f"r{hour}", "Accepted", ip="192.0.2.1", at=T0 + timedelta(hours=hour)) for hour in range(4)
    ])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules,
                           since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert sorted(i for ids in _ids(result.alerts, ROOT_ACCEPTED) for i in ids) == ["r1", "r2"]
    assert result.events == {"system.auth": 2}
    with pytest.raises(ValueError, match="timezone-aware"):
        run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules,
                      since=datetime(2026, 3, 1))


def test_tenants_never_mix(spark: Any, own_rules: CompiledRuleSet, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [
        ssh("same-id", "Accepted", ip="192.0.2.1", tenant="north-school"),
        ssh("same-id", "Accepted", ip="192.0.2.1", tenant="south-clinic"),
        # 5 + 5 failures from one IP, split over two tenants: never one group of 10
        *failures(5, ip="203.0.113.20", every=timedelta(seconds=5), tenant="north-school"),
        *failures(5, ip="203.0.113.20", every=timedelta(seconds=5), tenant="south-clinic"),
        # 10 in each tenant: one alert per tenant, different ids
        *failures(10, ip="203.0.113.30", every=timedelta(seconds=5), tenant="north-school", prefix="x"),
        *failures(10, ip="203.0.113.30", every=timedelta(seconds=5), tenant="south-clinic", prefix="x"),
    ])
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    root = [a for a in result.alerts if a["rule"]["id"] == ROOT_ACCEPTED]
    assert sorted(a["organization"]["id"] for a in root) == ["north-school", "south-clinic"]
    assert len({a["id"] for a in root}) == 2
    brute = [a for a in result.alerts if a["rule"]["id"] == BRUTE_FORCE]
    assert sorted((a["organization"]["id"], a["group_key"]) for a in brute) == [
        ("north-school", "source.ip=203.0.113.30"), ("south-clinic", "source.ip=203.0.113.30")]
    assert len({a["id"] for a in brute}) == 2
    assert {a["organization"]["id"] for a in read_alerts(tmp_path / "alerts", tenant="south-clinic")} == {
        "south-clinic"}


def test_replayed_events_match_once(spark: Any, own_rules: CompiledRuleSet, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", failures(9, ip="203.0.113.40", every=timedelta(seconds=5)))
    # an at-least-once replay that bypassed the store's id index: the same file lands twice in the lake
    part = next((tmp_path / "events").rglob("*.parquet"))
    shutil.copy(part, part.with_name("part-replayed.parquet"))
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    assert result.events == {"system.auth": 18}  # rows evaluated
    assert result.matches["system.auth"] == {SSH_FAILURE: 9}  # each event matches once
    assert result.alerts == []  # 9 distinct failures stay under the brute-force threshold of 10


def test_event_count_equals_what_spark_reads(spark: Any, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [ssh(f"h{hour}", "Accepted", ip="192.0.2.1", at=T0 + timedelta(hours=hour),
                                         tenant=("north" if hour % 3 else "south")) for hour in range(0, 60, 7)])
    windows = [(None, None), (T0 + timedelta(hours=5), None), (None, T0 + timedelta(hours=30)),
               (T0 + timedelta(hours=13, minutes=1), T0 + timedelta(hours=49))]
    for since, until in windows:
        events = read_events(spark, lake(tmp_path), "system.auth", since=since, until=until, deduplicate=False)
        assert events is not None
        assert lake(tmp_path).count("system.auth", since=since, until=until) == events.count()
    assert lake(tmp_path).count("system.auth", since=T0 + timedelta(days=30)) == 0


def test_read_events_names_the_columns_spark_reads(spark: Any, tmp_path: Path) -> None:
    """`read_events` tells `prepare_events` the store's columns instead of asking the JVM: they must be right."""
    write_lake(tmp_path / "events", failures(2, ip="203.0.113.60", every=timedelta(seconds=5)))
    events = read_events(spark, lake(tmp_path), "system.auth", deduplicate=False)
    assert events is not None
    added = {"_tenant", "_event_id", "_ts_us", "_dataset", *ENTITY_COLUMNS.values()}
    assert set(events.columns) == set(lake(tmp_path).columns) | added
    assert set(lake(tmp_path).columns) == {*ARROW_SCHEMA.names, "dataset", "tenant", "day"}


T0_MICROS = int(T0.timestamp()) * 1_000_000


def _micros_frame(spark: Any, offsets: range) -> Any:
    """Column `t`: T0 + 3 us per offset, in epoch microseconds."""
    return spark.range(offsets.start, offsets.stop).select((F.col("id") * 3 + F.lit(T0_MICROS)).alias("t"))


def test_window_condition_keeps_since_and_drops_until_both_ways(spark: Any) -> None:
    frame = _micros_frame(spark, range(-4, 5))  # T0 - 12 us ... T0 + 12 us, every 3 us
    us = timedelta(microseconds=1)
    windows = {(T0, T0 + 6 * us): [0, 3], (None, T0): [-12, -9, -6, -3], (T0 - 4 * us, None): [-3, 0, 3, 6, 9, 12],
               (T0 - 3 * us, T0 + 3 * us): [-3, 0], (None, None): list(range(-12, 13, 3)), (T0, T0): []}
    for (since, until), expected in windows.items():
        for jvm in (True, False):
            rows = frame.filter(window_condition(spark, "t", since, until, functions=jvm)).collect()
            assert sorted(row["t"] - T0_MICROS for row in rows) == expected, (since, until, jvm)
    with pytest.raises(ValueError, match="timezone-aware"):
        window_condition(spark, "t", datetime(2026, 1, 1), None, functions=False)


def test_a_moving_window_runs_the_same_generated_code(spark: Any) -> None:
    """Bounds travel by reference: the next window's query compiles no class; literals would."""
    compiled = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    frame = _micros_frame(spark, range(0, 1000)).filter(F.col("t") % 7 != 5)  # a shape of its own

    def compilations(start: datetime, *, jvm: bool) -> tuple[int, int]:
        before = compiled.getCount()
        kept = frame.filter(window_condition(spark, "t", start, start + timedelta(milliseconds=1),
                                             functions=jvm)).count()
        return kept, compiled.getCount() - before

    # t in [T0 + 600 us, T0 + 1,600 us): the second window below
    expected = sum(1 for i in range(1000) if 600 <= 3 * i < 1600 and (3 * i + T0_MICROS) % 7 != 5)
    for jvm in (True, False):
        compilations(T0 + timedelta(hours=1 if jvm else 2), jvm=jvm)  # the first window compiles the query
        kept, new_classes = compilations(T0 + timedelta(microseconds=600), jvm=jvm)
        assert kept == expected
        assert (new_classes == 0) is jvm, (jvm, new_classes)


def test_chunked_projection_matches_single_projection(spark: Any, own_rules: CompiledRuleSet,
                                                      tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [*failures(3, ip="203.0.113.50", every=timedelta(seconds=5)),
                                     ssh("acc", "Accepted", ip="192.0.2.1")])
    events = read_events(spark, lake(tmp_path), "system.auth")
    assert events is not None
    rules = own_rules.detections("system.auth")

    def pairs(chunk_size: int) -> list[tuple[str, str]]:
        rows = matched(events, rules, chunk_size=chunk_size).select("_event_id", "_rule_id").collect()
        return sorted((r["_event_id"], r["_rule_id"]) for r in rows)

    # three failures; the accepted login matches the root-login rule and the accepted-login base rule
    assert pairs(1) == pairs(200) and len(pairs(200)) == 5


_FAILED = re.compile(
    r"^(\w{3} +\d+ [\d:]{8}) (\S+) sshd\[\d+\]: Failed \S+ for (?:invalid user )?(\S+) from (\S+) port")


def test_brute_force_fires_on_loghub_openssh(spark: Any, own_rules: CompiledRuleSet, corpora: Path,
                                             tmp_path: Path) -> None:
    docs = []
    for number, line in enumerate((corpora / "loghub" / "OpenSSH_2k.log").read_text().splitlines()):
        match = _FAILED.match(line)
        if match:
            at = datetime.strptime(f"2026 {match.group(1)}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
            doc = ssh(f"line-{number}", "Failed", ip=match.group(4), user=match.group(3), at=at, host=match.group(2))
            docs.append(doc)
    write_lake(tmp_path / "events", docs)
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules)
    brute = [a for a in result.alerts if a["rule"]["id"] == BRUTE_FORCE]
    assert sorted({a["entities"]["source.ip"][0] for a in brute}) == sorted([
        "103.99.0.122", "112.95.230.3", "183.62.140.253", "185.190.58.151", "187.141.143.180", "5.188.10.180"])
    assert all(a["event"]["count"] >= 10 and len(a["event"]["ids"]) <= 100 for a in brute)


def test_since_until_read_only_the_day_folders_of_the_window(spark: Any, own_rules: CompiledRuleSet,
                                                             tmp_path: Path) -> None:
    days = [T0 + timedelta(days=offset) for offset in range(4)]  # 1..4 March, 12:00
    write_lake(tmp_path / "events", [ssh(f"d{n}", "Accepted", ip="192.0.2.1", at=at) for n, at in enumerate(days)])
    outside = next((tmp_path / "events").rglob("day=2026-03-04/*.parquet"))
    outside.write_bytes(b"not parquet: reading this folder would fail the run")
    since, until = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)  # until is exclusive
    assert day_range(since, until) == ("2026-03-02", "2026-03-03")
    partitions = lake(tmp_path).partitions("system.auth", since=since, until=until)
    assert [p.name for p in partitions] == ["day=2026-03-02", "day=2026-03-03"]
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=own_rules,
                           since=since, until=until)
    assert sorted(i for ids in _ids(result.alerts, ROOT_ACCEPTED) for i in ids) == ["d1", "d2"]
    assert result.events == {"system.auth": 2}


def test_alert_ids_do_not_depend_on_the_window(spark: Any, own_rules: CompiledRuleSet, tmp_path: Path) -> None:
    write_lake(tmp_path / "events", [
        *(ssh(f"r{hour}", "Accepted", ip="192.0.2.1", at=T0 + timedelta(hours=hour)) for hour in range(0, 48, 5)),
        cloudtrail("ct-stop", "StopLogging", at=T0 + timedelta(hours=30)),
    ])
    whole = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "a", rules=own_rules)
    middle = T0 + timedelta(hours=24)
    first = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "b", rules=own_rules,
                          until=middle)
    second = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "b", rules=own_rules,
                           since=middle)
    assert len(whole.alerts) == 11 and first.alerts and second.alerts
    assert sorted(a["id"] for a in first.alerts + second.alerts) == sorted(a["id"] for a in whole.alerts)
    again = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "b", rules=own_rules,
                          since=middle)
    assert again.new_alerts == [] and [a["id"] for a in again.alerts] == [a["id"] for a in second.alerts]


def test_narrow_matches_keep_only_the_leaves_expressions_read() -> None:
    from correlator.engine.detection import _leaves

    assert _leaves([("source", "ip"), ("user", "name"), ("user", "domain")]) == {
        "source": {"ip": True}, "user": {"domain": True, "name": True}}
    assert _leaves([("source", "ip"), ("source",), ("aws", "cloudtrail", "user_identity", "arn")]) == {
        "source": True, "aws": {"cloudtrail": {"user_identity": {"arn": True}}}}


CROSS_DATASET_RULES = """
title: SSH failure
id: 11111111-aaaa-4aaa-8aaa-111111111111
name: ssh_failure
logsource: {product: linux, service: sshd}
detection:
    selection: {system.auth.ssh.event: Failed}
    condition: selection
level: low
---
title: Console login failure
id: 22222222-aaaa-4aaa-8aaa-222222222222
name: console_failure
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: ConsoleLogin, errorCode: Failed authentication}
    condition: selection
level: low
---
title: Failures on SSH and the AWS console from one address
id: 33333333-aaaa-4aaa-8aaa-333333333333
correlation:
    type: event_count
    rules: [ssh_failure, console_failure]
    group-by: [source.ip]
    timespan: 5m
    condition: {gte: 3}
level: high
---
title: Three SSH failures from one address
id: 44444444-aaaa-4aaa-8aaa-444444444444
correlation:
    type: event_count
    rules: [ssh_failure]
    group-by: [source.ip]
    timespan: 5m
    condition: {gte: 3}
level: medium
"""


def test_correlations_over_one_and_over_two_datasets(spark: Any, tmp_path: Path) -> None:
    """A correlation over one dataset runs beside the other datasets' matching, one over two after both."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cross.yml").write_text(CROSS_DATASET_RULES)
    ruleset = RuleCompiler(spark).compile([tmp_path / "rules"])
    assert ruleset.unsupported == []
    ip = "203.0.113.60"
    write_lake(tmp_path / "events", [
        *failures(2, ip=ip, every=timedelta(seconds=30)),  # two SSH failures: not three on SSH alone
        cloudtrail("ct-fail", "ConsoleLogin", provider="signin.amazonaws.com", at=T0 + timedelta(minutes=2),
                   source_ip=ip, error_code="Failed authentication"),
        *failures(3, ip="198.51.100.77", every=timedelta(seconds=20), prefix="g"),  # three: the SSH-only one
    ])
    for parallel in (2, 1):
        result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / f"alerts{parallel}",
                               rules=ruleset, options=engine_options(spark, parallel_datasets=parallel))
        fired = {(a["rule"]["id"][:8], a["group_key"], a["event"]["dataset"], tuple(a["event"]["ids"]))
                 for a in result.alerts}
        assert fired == {
            ("33333333", f"source.ip={ip}", "aws.cloudtrail,system.auth", ("f0", "f1", "ct-fail")),
            ("33333333", "source.ip=198.51.100.77", "system.auth", ("g0", "g1", "g2")),
            ("44444444", "source.ip=198.51.100.77", "system.auth", ("g0", "g1", "g2")),
        }, parallel
        assert "system.auth correlations" in result.timings and "correlations" in result.timings
