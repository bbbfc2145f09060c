"""Differential test: our Spark engine against pySigma's sqlite backend (the Zircolite method).

sqlite side: the raw CloudTrail records flattened to one row each (dotted keys, Sigma's field names,
columns `TEXT COLLATE NOCASE`, a Python `REGEXP`), every rule converted by pysigma-backend-sqlite and
run as its own query. Spark side: the same records through the real collector (`CloudTrailParser`:
redaction, ECS mapping), our pipelines and backend, all rules in one pass of the engine. Both must
give the same (rule id, eventID) pairs; remaining, explained differences are listed in
`KNOWN_DIFFERENCES` and in `correlator/README.md` ("Known differences").
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionOR
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaBool, SigmaCIDRExpression, SigmaNumber, SigmaString, SpecialChars

from citysoc.schema import spark_schema, to_row
from collectors.base import ParsedEvent
from collectors.cloudtrail import CloudTrailParser, read_maybe_gzip, split_records
from correlator.compiler import RuleCompiler
from tests.correlator.builders import matched as engine_matches

pytestmark = pytest.mark.slow

AWS_RULES = "sigmahq/rules/cloud/aws"
Pair = tuple[str, str]  # (rule id, eventID)
# (rule id, eventID) pairs on which the engines may legitimately differ, with the reason. Empty: none remain.
KNOWN_DIFFERENCES: dict[Pair, str] = {}


# --- sqlite (Zircolite method) -------------------------------------------------------------------------

def flatten_record(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Zircolite-style flattening: nested keys joined by dots, lists kept as JSON text."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten_record(value, f"{name}.")
        elif isinstance(value, list):
            yield name, json.dumps(value)
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        else:
            yield name, value


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def sqlite_matches(rules: Iterable[SigmaRule], records: list[Mapping[str, Any]]) -> set[Pair]:
    """(rule id, eventID) for every record each rule's sqlite query selects."""
    backend = sqliteBackend(collate_nocase=True)
    queries: dict[str, str] = {}
    columns: dict[str, str] = {}  # lower-cased name -> first spelling (SQLite names ignore case)
    for rule in rules:
        try:
            [query] = backend.convert_rule(rule)
        except Exception:
            continue
        queries[str(rule.id)] = query
        for name in backend.required_fields(rule):
            columns.setdefault(name.lower(), name)
    rows = [dict(flatten_record(record)) for record in records]
    for row in rows:
        for name in row:
            columns.setdefault(name.lower(), name)
    connection = sqlite3.connect(":memory:")
    connection.create_function("REGEXP", 2, _regexp, deterministic=True)
    names = list(columns.values())
    quoted = ", ".join('"' + n.replace('"', '""') + '" TEXT COLLATE NOCASE' for n in names)
    connection.execute(f"CREATE TABLE logs ({quoted})")
    placeholders = ", ".join("?" for _ in names)
    connection.executemany(
        f"INSERT INTO logs VALUES ({placeholders})",
        # a key differing only by case from an earlier one collides with it; the first spelling wins
        [[next((v for k, v in row.items() if k.lower() == n.lower()), None) for n in names] for row in rows])
    pairs: set[Pair] = set()
    for rule_id, query in queries.items():
        select = query.replace("SELECT * FROM logs", "SELECT eventID FROM logs", 1)
        pairs.update((rule_id, event_id) for (event_id,) in connection.execute(select))
    connection.close()
    return pairs


# --- Spark (our engine) --------------------------------------------------------------------------------

def spark_matches(spark: Any, rule_paths: list[Path], record_files: list[Path]) -> tuple[set[Pair], set[str]]:
    """(rule id, event.id) pairs from our engine; and the ids of the rules that compiled."""
    ruleset = RuleCompiler(spark).compile(rule_paths)
    parser = CloudTrailParser()
    rows = []
    for path in record_files:
        for parsed in parser.parse(path, tenant="diff", source="diff"):
            if isinstance(parsed, ParsedEvent):
                rows.append(to_row(parsed.doc))
    events = spark.createDataFrame(rows, spark_schema())
    detections = ruleset.detections("aws.cloudtrail")
    matched = engine_matches(events, detections).select("event.id", "_rule_id").collect()
    return {(row["_rule_id"], row["id"]) for row in matched}, {rule.id for rule in detections}


def compare(sqlite_pairs: set[Pair], spark_pairs: set[Pair], compiled: set[str]) -> dict[str, list[Pair]]:
    only_sqlite = sorted(p for p in sqlite_pairs - spark_pairs if p[0] in compiled and p not in KNOWN_DIFFERENCES)
    only_spark = sorted(p for p in spark_pairs - sqlite_pairs if p not in KNOWN_DIFFERENCES)
    return {"only_sqlite": only_sqlite, "only_spark": only_spark}


def _records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        for _, record, failure in split_records(read_maybe_gzip(path), str(path)):
            if failure is None and isinstance(record, dict):
                records.append(record)
    return records


def test_stratus_corpus_same_matches(spark: Any, corpora: Path) -> None:
    files = sorted((corpora / "stratus").glob("*.json"))
    records = _records(files)
    assert len(records) == 310
    rules = SigmaCollection.load_ruleset([corpora / AWS_RULES]).rules
    sqlite_pairs = sqlite_matches(rules, records)
    spark_pairs, compiled = spark_matches(spark, [corpora / AWS_RULES], files)
    print(f"\nstratus: sqlite {len(sqlite_pairs)} pairs / {len({r for r, _ in sqlite_pairs})} rules, "
          f"spark {len(spark_pairs)} pairs / {len({r for r, _ in spark_pairs})} rules")
    assert len(sqlite_pairs) == 80  # FIELD-NOTES: 80 pairs across 10 rules
    assert compare(sqlite_pairs, spark_pairs, compiled) == {"only_sqlite": [], "only_spark": []}


# --- generated variants of each rule's own selections ------------------------------------------------

def _concrete(value: SigmaString) -> str | None:
    """A string the Sigma string matches: `*` -> 'W', `?` -> 'Q'; None when it holds a placeholder."""
    out = []
    for part in value.s:
        if isinstance(part, str):
            out.append(part)
        elif part == SpecialChars.WILDCARD_MULTI:
            out.append("W")
        elif part == SpecialChars.WILDCARD_SINGLE:
            out.append("Q")
        else:
            return None
    return "".join(out)


def _satisfying(item: SigmaDetectionItem) -> Any:
    """A raw value satisfying one detection item, or None when it cannot be generated simply."""
    if not item.value or item.field is None:
        return None
    value = item.value[0]
    if isinstance(value, SigmaString):
        return _concrete(value)
    if isinstance(value, SigmaNumber):
        return value.number
    if isinstance(value, SigmaBool):
        return value.boolean
    if isinstance(value, SigmaCIDRExpression):
        return str(value.network.network_address)
    return None


def _set(record: dict[str, Any], dotted: str, value: Any) -> None:
    node = record
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _items(detection: SigmaDetection) -> list[SigmaDetectionItem] | None:
    items: list[SigmaDetectionItem] = []
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            if item.item_linking is ConditionOR:  # a list of maps: satisfy its first alternative
                item = item.detection_items[0] if item.detection_items else item
                if isinstance(item, SigmaDetectionItem):
                    items.append(item)
                    continue
            nested = _items(item)
            if nested is None:
                return None
            items.extend(nested)
        else:
            items.append(item)
    return items


def variants(rule: SigmaRule, serial: Iterator[int]) -> list[dict[str, Any]]:
    """For each selection: one record satisfying it, plus wrong-value, missing-field and case mutations."""
    base = {"eventVersion": "1.08", "eventTime": "2026-03-01T12:00:00Z", "eventName": "GeneratedCall",
            "eventSource": "generated.amazonaws.com", "awsRegion": "eu-west-2", "recipientAccountId": "111122223333"}
    records: list[dict[str, Any]] = []
    for detection in rule.detection.detections.values():
        items = _items(detection)
        if not items:
            continue
        values = {it.field: _satisfying(it) for it in items if it.field}
        if not values or any(v is None for v in values.values()):
            continue
        positive = json.loads(json.dumps(base))
        for field, value in values.items():
            _set(positive, field, value)
        mutations = [positive]
        for field, value in values.items():
            for changed in ("wrong", "missing", "case"):
                record = json.loads(json.dumps(positive))
                if changed == "missing":
                    if field in ("eventName", "eventTime", "eventID"):
                        continue  # the collector dead-letters such a record; sqlite would still see it
                    _drop(record, field)
                elif changed == "wrong":
                    _set(record, field, f"zz{value}zz" if isinstance(value, str) else "zz")
                elif isinstance(value, str) and value.swapcase() != value:
                    _set(record, field, value.swapcase())
                else:
                    continue
                mutations.append(record)
        for record in mutations:
            record["eventID"] = f"gen-{next(serial):06d}"
            records.append(record)
    return records


def _drop(record: dict[str, Any], dotted: str) -> None:
    node: Any = record
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def test_generated_variants_same_matches(spark: Any, corpora: Path, tmp_path: Path) -> None:
    rules = SigmaCollection.load_ruleset([corpora / AWS_RULES]).rules
    serial = iter(range(1_000_000))
    records = [record for rule in rules for record in variants(rule, serial)]
    path = tmp_path / "generated.json"
    path.write_text(json.dumps(records))
    sqlite_pairs = sqlite_matches(SigmaCollection.load_ruleset([corpora / AWS_RULES]).rules, records)
    spark_pairs, compiled = spark_matches(spark, [corpora / AWS_RULES], [path])
    print(f"\ngenerated: {len(records)} records from {len(rules)} rules; sqlite {len(sqlite_pairs)} pairs / "
          f"{len({r for r, _ in sqlite_pairs})} rules, spark {len(spark_pairs)} pairs / "
          f"{len({r for r, _ in spark_pairs})} rules")
    assert len({r for r, _ in spark_pairs}) >= 40  # the generator exercises most rules
    assert compare(sqlite_pairs, spark_pairs, compiled) == {"only_sqlite": [], "only_spark": []}
