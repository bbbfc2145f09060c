"""A realistic detection workload built from real records, written to a Parquet lake.

Templates are the real records of `../shared/corpora` parsed by CitySOC's own collectors: the 310
CloudTrail records of Stratus Red Team and the 2,000 OpenSSH lines of loghub. Each generated event is
a template with a fresh `event.id`, a timestamp spread over several days (business hours weighted),
one of ten tenants (each with its own AWS account) and a source IP from a pool of public and private
addresses (also rewritten inside the sshd message). Rows are built with pyarrow `take` on the parsed
templates, so millions of events take seconds, and are stored through the Parquet event store's
columnar write (`ParquetEventStore.write_table`).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from citysoc.schema import ARROW_SCHEMA, PLAIN_ENCODED, to_row
from citysoc.store import ParquetEventStore
from collectors.base import ParsedEvent, ParserOptions
from collectors.cloudtrail import CloudTrailParser
from collectors.syslog import SyslogParser

TENANTS: tuple[str, ...] = (
    "city-council", "north-hospital", "south-hospital", "east-gp", "west-gp", "central-school",
    "harbour-school", "river-charity", "hill-academy", "library-trust",
)
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


@dataclass(frozen=True)
class WorkloadSpec:
    events: int
    days: int = 7
    cloudtrail_share: float = 0.5
    alert_share: float = 0.002  # share of events copied from records that an alerting rule matches
    seed: int = 7

    @property
    def tag(self) -> str:
        return (f"n{self.events}-d{self.days}-c{int(self.cloudtrail_share * 100)}-a{self.alert_share}"
                f"-s{self.seed}")


def template_docs(corpora: Path) -> dict[str, list[dict[str, Any]]]:
    """Real records parsed by our collectors, by dataset."""
    options = ParserOptions(year=2026, now=START)
    docs: dict[str, list[dict[str, Any]]] = {}
    parsed: list[Any] = []
    for path in sorted((corpora / "stratus").glob("*.json")):
        parsed += CloudTrailParser(options).parse(path, tenant=TENANTS[0], source="stratus")
    parsed += SyslogParser(options).parse(corpora / "loghub" / "OpenSSH_2k.log", tenant=TENANTS[0], source="loghub")
    for item in parsed:
        if isinstance(item, ParsedEvent):
            docs.setdefault(item.dataset, []).append(item.doc)
    return docs


def _ip_pool(rng: random.Random, size: int = 4096) -> list[str]:
    pool = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(size // 4)]
    pool += [f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(size // 4)]
    pool += [f"{rng.choice([23, 45, 81, 103, 146, 185, 203])}.{rng.randrange(256)}.{rng.randrange(256)}."
             f"{rng.randrange(1, 255)}" for _ in range(size // 2)]
    return pool


def _replace(column: pa.Array, path: Sequence[str], value: pa.Array) -> pa.Array:
    """A copy of a struct column with the leaf at `path` replaced."""
    if not path:
        return value
    struct_type = column.type
    children = [column.field(i) for i in range(struct_type.num_fields)]
    index = struct_type.get_field_index(path[0])
    children[index] = _replace(children[index], path[1:], value)
    return pa.StructArray.from_arrays(children, fields=list(struct_type), mask=column.is_null())


def set_field(table: pa.Table, name: str, value: pa.Array) -> pa.Table:
    """`table` with the (dotted, nested) field `name` replaced by `value`."""
    parts = [name] if name == "@timestamp" else name.split(".")
    index = table.schema.get_field_index(parts[0])
    column = table.column(index).combine_chunks()
    return table.set_column(index, table.schema.field(index), _replace(column, parts[1:], value))


def _times(rng: random.Random, count: int, days: int) -> list[int]:
    """Microseconds since the epoch: 70% of events in working hours, the rest around the clock."""
    base = int(START.timestamp()) * 1_000_000
    values = []
    for _ in range(count):
        day = rng.randrange(days)
        second = rng.randrange(8 * 3600, 18 * 3600) if rng.random() < 0.7 else rng.randrange(86400)
        values.append(base + (day * 86400 + second) * 1_000_000 + rng.randrange(1_000_000))
    return values


def template_table(docs: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([to_row(doc) for doc in docs], schema=ARROW_SCHEMA)


def _picks(rng: random.Random, count: int, size: int, alerting: frozenset[int], alert_share: float) -> list[int]:
    """Template indices: templates an alerting rule matches make up `alert_share` of the events."""
    quiet = [index for index in range(size) if index not in alerting] or list(range(size))
    loud = sorted(alerting) or quiet
    return [rng.choice(loud) if rng.random() < alert_share else rng.choice(quiet) for _ in range(count)]


def build_dataset(dataset: str, docs: list[dict[str, Any]], count: int, *, days: int, rng: random.Random,
                  alerting: frozenset[int] = frozenset(), alert_share: float = 0.0) -> pa.Table:
    """`count` events of one dataset from its templates (`alerting`: indices some alerting rule matches)."""
    templates = template_table(docs)
    picks = _picks(rng, count, len(docs), alerting, alert_share) if alerting else \
        [rng.randrange(len(docs)) for _ in range(count)]
    table = templates.take(pa.array(picks, pa.int32()))
    tenants = [rng.randrange(len(TENANTS)) for _ in range(count)]
    accounts = [f"{100000000000 + 7919 * (index + 1):012d}" for index in range(len(TENANTS))]
    pool = _ip_pool(rng)
    ips = [pool[rng.randrange(len(pool))] for _ in range(count)]
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(count)]
    table = set_field(table, "event.id", pa.array(ids, pa.string()))
    table = set_field(table, "organization.id", pa.array([TENANTS[t] for t in tenants], pa.string()))
    table = set_field(table, "@timestamp", pa.array(_times(rng, count, days), pa.timestamp("us", tz="UTC")))
    if dataset == "aws.cloudtrail":
        table = set_field(table, "cloud.account.id", pa.array([accounts[t] for t in tenants], pa.string()))
        had_ip = [bool(docs[p].get("source", {}).get("ip")) for p in picks]
        source_ip = pa.array([ip if had else None for ip, had in zip(ips, had_ip, strict=True)], pa.string())
        address = pc.if_else(pa.array(had_ip), source_ip, table.column("source").combine_chunks().field("address"))
        table = set_field(table, "source.ip", source_ip)
        table = set_field(table, "source.address", address)
    else:
        # the sshd message names the source IP: rewrite it there too, keeping the rest of the line
        pieces = []
        for doc in docs:
            message = doc.get("message") or ""
            match = _IPV4.search(message)
            pieces.append((message[:match.start()], message[match.end():]) if match else (message, None))
        messages, source_ips = [], []
        for pick, ip in zip(picks, ips, strict=True):
            head, tail = pieces[pick]
            messages.append(head if tail is None else head + ip + tail)
            source_ips.append(None if tail is None else ip)
        table = set_field(table, "message", pa.array(messages, pa.string()))
        table = set_field(table, "source.ip", pa.array(source_ips, pa.string()))
        table = set_field(table, "source.address", pa.array(source_ips, pa.string()))
    return table


# the lake's writer: a lake an older writer left (without the files' filled fields in its arrival log) is rebuilt
LAKE_WRITER = "store, filled fields recorded"


def write_lake(store: ParquetEventStore, dataset: str, table: pa.Table) -> int:
    """Store one dataset's events, tenant by tenant; returns the events stored."""
    tenants = table.column("organization").combine_chunks().field("id")
    stored = 0
    for tenant in pc.unique(tenants).to_pylist():
        stored += store.write_table(tenant=tenant, dataset=dataset,
                                    table=table.filter(pc.equal(tenants, pa.scalar(tenant)))).stored
    return stored


def generate(events_dir: Path, spec: WorkloadSpec, docs: dict[str, list[dict[str, Any]]],
             alerting: dict[str, frozenset[int]]) -> dict[str, int]:
    """(Re)build the lake for `spec` unless it is already there; returns events per dataset."""
    marker = events_dir / "workload.json"
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored.get("tag") == spec.tag and stored.get("plain_encoded") == sorted(PLAIN_ENCODED) \
                and stored.get("writer") == LAKE_WRITER:
            return {name: int(count) for name, count in stored["events"].items()}
    shutil.rmtree(events_dir, ignore_errors=True)
    events_dir.mkdir(parents=True)
    rng = random.Random(spec.seed)
    cloudtrail = int(spec.events * spec.cloudtrail_share)
    counts = {"aws.cloudtrail": cloudtrail, "system.auth": spec.events - cloudtrail}
    for dataset, count in counts.items():
        table = build_dataset(dataset, docs[dataset], count, days=spec.days, rng=rng,
                              alerting=alerting.get(dataset, frozenset()), alert_share=spec.alert_share)
        write_lake(ParquetEventStore(events_dir), dataset, table)
    marker.write_text(json.dumps({"tag": spec.tag, "plain_encoded": sorted(PLAIN_ENCODED), "writer": LAKE_WRITER,
                                  "events": counts,
                                  "templates": {name: len(items) for name, items in docs.items()},
                                  "alerting_templates": {name: len(ids) for name, ids in alerting.items()}}))
    return counts


