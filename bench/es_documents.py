"""What the Elasticsearch store's own conversions cost per event, on the client side (no cluster is needed: the
cluster's share, indexing and search, is not measured here; no cluster can run where these benchmarks run).

    python -m bench.es_documents                 # 200,000 sshd events
    python -m bench.es_documents --events 50000

Events: loghub's `OpenSSH_2k.log` parsed by the syslog collector (`system.auth`), as the drainer hands them to
the store. Steps, CPU seconds of this process per event:
- write: the drainer's Arrow table -> the `_source` of each bulk action (`table_documents`), and its JSON
  encoding;
- read: a page of 2,000 hits as a search response's JSON -> decoded -> one Arrow batch of the event schema
  (`hits_batch`, what each slice of Spark's reader yields), and the same into a schema of eight columns (a
  reader given a narrower schema).
"""

from __future__ import annotations

import argparse
import json
import resource
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from citysoc.schema import ARROW_SCHEMA
from citysoc.store.es_documents import hits_batch, table_documents
from collectors.base import get_parser
from collectors.records import RawRecord

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
PAGE = 2000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FULL = pa.schema([*ARROW_SCHEMA, pa.field("tenant", pa.string()), pa.field("dataset", pa.string())])
NARROW = pa.schema([ARROW_SCHEMA.field("@timestamp"), pa.field("tenant", pa.string()),
                    pa.field("event", pa.struct([pa.field("id", pa.string()), pa.field("outcome", pa.string())])),
                    pa.field("source", pa.struct([pa.field("ip", pa.string())])),
                    pa.field("user", pa.struct([pa.field("name", pa.string())])),
                    pa.field("process", pa.struct([pa.field("name", pa.string())])),
                    pa.field("system", ARROW_SCHEMA.field("system").type), ARROW_SCHEMA.field("message")])


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)

    lines = (CORPORA / "loghub" / "OpenSSH_2k.log").read_bytes().splitlines()
    records = [RawRecord(lines[n % len(lines)], f"bench:{n}", NOW) for n in range(args.events)]
    table = get_parser("syslog")().parse_records(records, tenant="council", source="syslog").tables["system.auth"]
    events = table.num_rows
    print(f"{events:,} system.auth events from {len(lines):,} loghub lines")

    started = cpu()
    documents = table_documents(table, tenant="council", dataset="system.auth")
    to_source = cpu() - started
    started = cpu()
    encoded = [orjson.dumps(document) for document in documents]
    encode = cpu() - started
    size = sum(map(len, encoded)) / events
    print(f"write: row -> _source {1e6 * to_source / events:.1f} µs/event, JSON encoding (orjson) "
          f"{1e6 * encode / events:.1f} µs/event; {size:.0f} bytes of _source per event")

    pages = [orjson.dumps({"hits": {"hits": [
        {"_index": ".ds-logs-system.auth-council-2026.01.01-000001", "_id": doc["event"]["id"], "_source": doc,
         "sort": [n]} for n, doc in enumerate(documents[start:start + PAGE])]}}) for start in range(0, events, PAGE)]
    for name, loads in (("orjson", orjson.loads), ("json", json.loads)):
        started = cpu()
        decoded = [loads(page) for page in pages]
        print(f"read: response JSON decoding ({name}) {1e6 * (cpu() - started) / events:.1f} µs/event")
    for label, schema in (("event schema", FULL), ("8 columns", NARROW)):
        started = cpu()
        converted = sum(hits_batch(page["hits"]["hits"], schema).num_rows for page in decoded)
        print(f"read: hits -> Arrow batch, {label}: {1e6 * (cpu() - started) / converted:.1f} µs/event")
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
