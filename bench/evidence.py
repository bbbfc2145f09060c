"""What a page of case evidence costs: `ParquetEventStore.events_by_id` for 50 ids in one tenant's busy day, beside
reading the same day with a plain pyarrow filter on `event.id` (every column of every row group).

    python -m bench.evidence                    # 1,000,000 events in the day, 20 pages of 50 ids
    python -m bench.evidence --events 200000 --pages 5
    python -m bench.evidence --no-compact       # the day as written, one file per batch of 20,000

The day: loghub's `OpenSSH_2k.log` parsed by the syslog collector (`ingest_files`), its rows repeated with fresh
event ids and times spread over one UTC day, written through the store in batches of 20,000 (file ingest's
batch size), then compacted as the idle intake does. Ids of a page are drawn at random from the day. Figures
are CPU seconds of this process (user + system) per page, so they do not depend on what else runs on the
machine; wall seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore
from collectors.ingest import ingest_files

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
TENANT, DATASET = "northgate-hospital", "system.auth"
DAY = datetime(2024, 12, 10, tzinfo=UTC)
BATCH = 20_000


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def template(folder: Path) -> pa.Table:
    scratch = ParquetEventStore(folder / "template")
    ingest_files(tenant=TENANT, source="syslog", paths=[CORPORA / "loghub" / "OpenSSH_2k.log"], store=scratch,
                 dead_letters=DeadLetterStore(folder / "deadletter"), year=2024)
    lake = scratch.arrow_dataset(DATASET)
    assert lake is not None
    return lake.to_table().drop_columns(["dataset", "tenant", "day"])


def fill(store: ParquetEventStore, rows: pa.Table, events: int, *, compact: bool = True) -> list[str]:
    """Write `events` copies of the template rows with fresh ids over one day; return the ids."""
    ids: list[str] = []
    step_us = 86_400_000_000 // events
    start_us = int(DAY.timestamp()) * 1_000_000
    for first in range(0, events, BATCH):
        count = min(BATCH, events - first)
        batch = rows.take(pa.array([(first + i) % rows.num_rows for i in range(count)], pa.int64()))
        # hashes, as real ids are: no file's min/max statistics of event.id can narrow a lookup
        batch_ids = [hashlib.blake2b(b"%d" % (first + i), digest_size=16).hexdigest() for i in range(count)]
        stamps = pa.array([start_us + (first + i) * step_us for i in range(count)], pa.int64()).cast(
            batch.schema.field("@timestamp").type)
        event = batch.column("event").combine_chunks()
        children = [pa.array(batch_ids) if f.name == "id" else event.field(f.name) for f in event.type]
        batch = batch.set_column(batch.schema.get_field_index("event"), "event",
                                 pa.StructArray.from_arrays(children, fields=list(event.type)))
        batch = batch.set_column(batch.schema.get_field_index("@timestamp"), "@timestamp", stamps)
        store.write_table(tenant=TENANT, dataset=DATASET, table=batch)
        ids += batch_ids
    if compact:
        store.compact(min_files=2)
    return ids


def measure(label: str, pages: list[list[str]], lookup: Callable[[list[str]], int]) -> None:
    cpu0, wall0 = cpu(), time.perf_counter()
    found = sum(lookup(page) for page in pages)
    cpu_s, wall_s = cpu() - cpu0, time.perf_counter() - wall0
    print(f"{label:<46} {cpu_s / len(pages) * 1000:8.1f} ms CPU/page {wall_s / len(pages) * 1000:8.1f} ms wall/page"
          f"  ({found} of {sum(map(len, pages))} found)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--no-compact", action="store_true", help="leave the day as written (one file a batch), "
                        "as a live day is before the idle intake compacts it")
    args = parser.parse_args()
    rng = random.Random(19)
    with tempfile.TemporaryDirectory(dir=REPO / "bench") as scratch:
        folder = Path(scratch)
        store = ParquetEventStore(folder / "events")
        started = time.perf_counter()
        ids = fill(store, template(folder), args.events, compact=not args.no_compact)
        files = [p for p in store.events_dir.rglob("*.parquet") if "_staging" not in p.parts]
        print(f"{args.events:,} events of one tenant-day in {len(files)} file(s), written in "
              f"{time.perf_counter() - started:.0f} s")
        window = [(DAY, DAY + timedelta(days=1))]

        def lookup(page: list[str]) -> int:
            return len(store.events_by_id(tenant=TENANT, ids=page, windows=window))

        def naive(page: list[str]) -> int:
            lake = ds.dataset([str(p) for p in files], format="parquet")
            return int(lake.to_table(filter=pc.field("event", "id").isin(page)).num_rows)

        # a burst (an alert's events are close in time) and ids scattered over the day (the worst case)
        starts = [rng.randrange(len(ids) - args.page_size) for _ in range(args.pages)]
        patterns = {"burst": [ids[start:start + args.page_size] for start in starts],
                    "scattered": [rng.sample(ids, args.page_size) for _ in range(args.pages)]}
        for name, pages in patterns.items():
            measure(f"{name}: events_by_id", pages, lookup)
            measure(f"{name}: pyarrow dataset filter, all columns", pages, naive)


if __name__ == "__main__":
    main()
