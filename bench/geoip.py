"""What GeoIP enrichment costs at ingest: CPU seconds per 1,000,000 events, beside parsing them, and beside a
lookup per event without the cache.

    python -m bench.geoip                       # 1,000,000 events, 4,096 and 100,000 distinct addresses
    python -m bench.geoip --events 200000

Events: loghub's `OpenSSH_2k.log` parsed by the syslog collector in batches of 20,000 (the batch size of
file ingest), each batch's `source.ip` rewritten from a pool of public addresses (random, skewed: a few
addresses make most events, as attackers and busy users do), so the enrichment sees `--pools` distinct
addresses over the run. The database is the installed one (`soc geoip update`, `$SOC_HOME/geoip`).
Figures are CPU seconds of this process (user + system), so they do not depend on what else runs.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from citysoc.settings import Settings
from collectors.base import get_parser
from collectors.enrich import GeoEnricher
from collectors.geoip import GeoDatabase, routable
from collectors.records import RawRecord

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
BATCH = 20_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def public_pool(size: int, rng: random.Random) -> list[str]:
    pool: set[str] = set()
    while len(pool) < size:
        address = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        if routable(address) is not None:
            pool.add(address)
    return sorted(pool)


def with_addresses(table: pa.Table, addresses: list[str]) -> pa.Table:
    source = table.column("source").combine_chunks()
    children = [pa.array(addresses, pa.string()) if item.name == "ip" else child
                for item, child in zip(source.type, source.flatten(), strict=True)]
    column = pa.StructArray.from_arrays(children, fields=list(source.type))
    return table.set_column(table.schema.get_field_index("source"), "source", column)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pools", type=int, nargs="+", default=[4096, 100_000])
    parser.add_argument("--naive-events", type=int, default=100_000, help="events looked up one by one")
    args = parser.parse_args(argv)

    directory = Settings().geoip_path
    started = cpu()
    database = GeoDatabase.open_installed(directory)
    if database is None:
        sys.exit(f"no GeoIP database under {directory}: run `soc geoip update` first")
    print(f"database opened in {cpu() - started:.2f} CPU s ({directory})")

    lines = (CORPORA / "loghub" / "OpenSSH_2k.log").read_bytes().splitlines()
    records = [RawRecord(lines[n % len(lines)], f"bench:{n}", NOW) for n in range(BATCH)]
    syslog = get_parser("syslog")()
    started = cpu()
    template = syslog.parse_records(records, tenant="council", source="syslog").tables["system.auth"]
    parse_seconds = (cpu() - started) * args.events / BATCH
    rows = template.num_rows
    print(f"parse_records: {parse_seconds:.2f} CPU s per {args.events:,} lines (one batch of {BATCH:,}, scaled)")

    rng = random.Random(7)
    for size in args.pools:
        pool = public_pool(size, rng)
        weights = [1 / (rank + 1) for rank in range(size)]  # Zipf-like: few addresses, most events
        batches = [with_addresses(template, rng.choices(pool, weights, k=rows))
                   for _ in range(max(1, args.events // rows))]
        events = rows * len(batches)
        enricher = GeoEnricher(database)
        started = cpu()
        enriched = sum(enricher.enrich(batch).num_rows for batch in batches)
        cached = cpu() - started
        per_million = cached * 1_000_000 / enriched
        sample = [address for batch in batches for address in batch.column("source").combine_chunks()
                  .field("ip").to_pylist()][:args.naive_events]
        started = cpu()
        for address in sample:
            database.lookup(address)
        naive = (cpu() - started) * 1_000_000 / len(sample)
        print(f"{size:>7,} distinct addresses, {events:,} events: enrichment {per_million:.2f} CPU s per 1M events "
              f"({1_000_000 / per_million:,.0f} events/CPU-s; {enricher.lookups:,} lookups; "
              f"{100 * cached / (parse_seconds * events / args.events):.1f}% of parsing); one lookup per event "
              f"without cache {naive:.2f} CPU s per 1M events ({naive / per_million:.1f}x)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
