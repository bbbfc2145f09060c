"""Spool and drain throughput: records/s into the spool (group commit, several threads) and out of it into the
Parquet store.

`python -m bench.spool [--records N]`. Not a test: it prints figures. It writes under `bench/out/spool/`
(gitignored). Records are RFC 3164 sshd lines of ~110 bytes.

- append: T threads each appending batches of B records; every append returns only once durable. Figures:
  records/s, appends/s, fdatasyncs per append (group commit), p99 append latency.
- read: `Spool.pending` over the whole spool (decode only).
- drain: `Drainer.run_once` until empty, with a minimal vectorised parser (`bench.passthrough`: the line is
  the message, the arrival time the timestamp, a BLAKE2 of tenant and payload the id) so that the figure is
  the spool's and the store's cost plus little else; the parser's own share is measured apart.
- index: `ParquetEventStore.write_table` alone, batch after batch, as the id index grows to millions.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors.base import LogParser, ParsedEvent, register_parser
from collectors.drain import Drainer
from collectors.records import ParsedBatch, RawRecord
from collectors.spool import Spool

OUT = Path(__file__).resolve().parent / "out" / "spool"
DATASET = "bench.lines"


def sshd_lines(count: int, *, offset: int = 0) -> list[RawRecord]:
    received = datetime.now(UTC)
    return [RawRecord(
        f"<38>Mar  2 09:{n // 60 % 60:02d}:{n % 60:02d} host{n % 50} sshd[{1000 + n % 30000}]: Failed password for "
        f"invalid user u{n} from 203.0.113.{n % 250} port {40000 + n % 20000} ssh2".encode(),
        f"tcp 192.0.2.{n % 200}:5{n % 1000:03d}", received) for n in range(offset, offset + count)]


def _struct(tree: pa.StructType, values: dict[str, Any], count: int, prefix: str) -> pa.StructArray:
    children = []
    for field in tree:
        name = f"{prefix}{field.name}"
        if name in values:
            children.append(values[name])
        elif pa.types.is_struct(field.type):
            children.append(_struct(field.type, values, count, f"{name}."))
        else:
            children.append(pa.nulls(count, field.type))
    return pa.StructArray.from_arrays(children, fields=list(tree))


@register_parser
class PassthroughParser(LogParser):
    """One event per record, built column-wise: what a vectorised parser costs beyond its parsing."""

    name = "bench.passthrough"
    datasets = (DATASET,)

    def parse(self, path: Path, *, tenant: str, source: str) -> Iterator[ParsedEvent | DeadLetter]:
        yield from ()

    def parse_records(self, records: Sequence[RawRecord], *, tenant: str, source: str) -> ParsedBatch:
        count = len(records)
        payloads = [record.payload for record in records]
        salt = tenant.encode() + b"\x1f" + source.encode() + b"\x1f"
        ids = pa.array([hashlib.blake2b(salt + payload, digest_size=16).hexdigest() for payload in payloads])
        received = pa.array([record.received for record in records], ARROW_SCHEMA.field("@timestamp").type)
        message = pa.array(payloads, pa.binary()).cast(pa.string())
        values = {"@timestamp": received, "message": message, "event.id": ids, "event.ingested": received,
                  "event.dataset": pa.array([DATASET] * count), "organization.id": pa.array([tenant] * count)}
        table = pa.Table.from_struct_array(_struct(pa.struct(list(ARROW_SCHEMA)), values, count, ""))
        return ParsedBatch(tables={DATASET: table})


def bench_append(directory: Path, *, threads: int, batch: int, appends: int) -> dict[str, float]:
    shutil.rmtree(directory, ignore_errors=True)
    records = sshd_lines(batch)
    latencies: list[float] = []
    flushes = 0
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        nonlocal flushes
        flushes += 1
        real_fdatasync(fd)

    os.fdatasync = counting_fdatasync  # counts the flushes the spool makes; each still happens
    try:
        with Spool(directory, max_bytes=16 * 1024**3, segment_bytes=64 * 1024**2) as spool:
            def work() -> None:
                mine = []
                for _ in range(appends):
                    start = time.perf_counter()
                    spool.append(tenant="council", source="bench.passthrough", records=records)
                    mine.append(time.perf_counter() - start)
                latencies.extend(mine)

            workers = [threading.Thread(target=work) for _ in range(threads)]
            started, cpu = time.perf_counter(), time.process_time()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        os.fdatasync = real_fdatasync
    total = threads * appends
    return {"records/s": total * batch / wall, "records/cpu-s": total * batch / cpu, "appends/s": total / wall,
            "flushes/append": flushes / total,
            "p99 ms": statistics.quantiles(latencies, n=100)[98] * 1000}


def bench_drain(home: Path, *, records: int, batch: int) -> dict[str, float]:
    shutil.rmtree(home, ignore_errors=True)
    with Spool(home / "spool", max_bytes=16 * 1024**3) as spool:
        for offset in range(0, records, batch):
            spool.append(tenant="council", source="bench.passthrough", records=sshd_lines(batch, offset=offset))
        started, cpu = time.perf_counter(), time.process_time()
        read = sum(len(item.records) for item in spool.pending())
        read_wall, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        windows = [[record for item in spool.pending() for record in item.records][i:i + 50_000]
                   for i in range(0, read, 50_000)]
        started, cpu = time.perf_counter(), time.process_time()
        for window in windows:
            PassthroughParser().parse_records(window, tenant="council", source="bench.passthrough")
        parse_cpu = time.process_time() - cpu
        del windows
        drainer = Drainer(spool, ParquetEventStore(home / "events"), DeadLetterStore(home / "deadletter"))
        started, cpu = time.perf_counter(), time.process_time()
        drained = 0
        while handled := drainer.run_once(max_records=50_000):
            drained += handled
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    store = ParquetEventStore(home / "events")
    assert drained == read == records == store.count(DATASET), (drained, read, records)
    return {"read records/s": read / read_wall, "read records/cpu-s": read / read_cpu,
            "drain records/s": drained / wall, "drain records/cpu-s": drained / cpu,
            "drain without the parser, records/cpu-s": drained / max(cpu - parse_cpu, 1e-9)}


def bench_index(home: Path, *, events: int, batch: int = 50_000) -> list[tuple[int, float, float]]:
    """`write_table` of live-like batches (one second of 50,000 events/s each) as the id index grows: (events
    stored, events/s and events/cpu-s over the last million)."""
    shutil.rmtree(home, ignore_errors=True)
    store = ParquetEventStore(home / "events")
    start = datetime.now(UTC)
    rates: list[tuple[int, float, float]] = []
    wall = cpu = 0.0
    stored = 0
    for number in range(events // batch):
        received = start + timedelta(seconds=number)
        records = [RawRecord(record.payload, record.origin, received)
                   for record in sshd_lines(batch, offset=number * batch)]
        table = PassthroughParser().parse_records(records, tenant="council", source="bench.passthrough").tables
        began, began_cpu = time.perf_counter(), time.process_time()
        stored += store.write_table(tenant="council", dataset=DATASET, table=table[DATASET]).stored
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        if stored % 1_000_000 == 0:
            rates.append((stored, 1_000_000 / wall, 1_000_000 / cpu))
            wall = cpu = 0.0
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=500_000, help="records drained (default 500,000)")
    parser.add_argument("--index-events", type=int, default=5_000_000,
                        help="events written to watch the id index grow (default 5,000,000; 0 skips)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; spool under {OUT}")
    print("append (durable on return)")
    for threads, batch in [(1, 1), (8, 1), (1, 100), (8, 100), (1, 1000), (4, 1000)]:
        appends = max(200, 200_000 // (batch * threads))
        figures = bench_append(OUT / "append", threads=threads, batch=batch, appends=appends)
        print(f"  {threads} thread(s) x batches of {batch:>4}: " + ", ".join(
            f"{name} {value:,.0f}" if value >= 10 else f"{name} {value:.2f}" for name, value in figures.items()))
    figures = bench_drain(OUT / "drain", records=args.records, batch=100)
    print(f"read and drain of {args.records:,} records appended in batches of 100")
    for name, value in figures.items():
        print(f"  {name}: {value:,.0f}")
    if args.index_events:
        print("store write_table, batches of 50,000 live events, as the id index grows")
        for stored, rate, cpu_rate in bench_index(OUT / "index", events=args.index_events):
            print(f"  {stored:>11,} stored: {rate:,.0f} events/s, {cpu_rate:,.0f} events/cpu-s")


if __name__ == "__main__":
    main()
