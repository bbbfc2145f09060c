"""The store stage of the live intake alone: `ParquetEventStore.write_table` on the parsed bench stream, in CPU
microseconds a line, and the same for a replay of lines it holds.

    python -m bench.ingest_store                    # 200,000 lines in 50,000-line blocks
    python -m bench.ingest_store --lines 1000000

The lines are `bench.ingest`'s stream (loghub's OpenSSH lines with a PRI, each its own pid), parsed once by
`SyslogParser.parse_records` as the drainer parses them and kept under `bench/out/` as an Arrow file; each run
writes them into a fresh lake, one `write_table` per block as the drainer stores a pass, timed with
`time.process_time` (this process, all its threads), Arrow allocating through malloc as `soc collect` does.
Then the first two blocks are written again (every line known: what a replay after a crash costs).
Compare commits by running it in each one's tree, alternately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # before pyarrow allocates: as soc collect runs

import pyarrow as pa
import pyarrow.ipc as ipc

from bench.ingest import CORPORA, OUT, TENANT, build_lines
from citysoc.ids import Occurrences
from citysoc.store import ParquetEventStore

DATASET = "system.auth"


def parsed_stream(lines: int, corpora: Path) -> pa.Table:
    """The stream's lines parsed to one table (cached beside the stream)."""
    cache = OUT / f"stream-{lines}.parsed.arrow"
    if not cache.exists():
        from collectors import ParserOptions, SyslogParser

        parser = SyslogParser(ParserOptions(now=datetime(2026, 1, 1, tzinfo=UTC)))
        occurrences = Occurrences()
        tables = [table for chunk in parser.record_chunks(build_lines(lines, corpora))
                  for table in parser.parse_records(chunk, tenant=TENANT, source="bench",
                                                    occurrences=occurrences).tables.values()]
        table = pa.concat_tables(tables)
        with ipc.new_file(cache, table.schema) as writer:
            writer.write_table(table)
    with ipc.open_file(cache) as reader:
        return reader.read_all().combine_chunks()


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--lines", type=int, default=200_000)
    options.add_argument("--block", type=int, default=50_000, help="lines per write_table (the drainer's pass)")
    options.add_argument("--corpora", type=Path, default=CORPORA)
    args = options.parse_args()
    table = parsed_stream(args.lines, args.corpora)
    blocks = [table.slice(start, args.block) for start in range(0, table.num_rows, args.block)]
    folder = Path(tempfile.mkdtemp(prefix="lake-", dir=OUT))
    try:
        store = ParquetEventStore(folder / "events")
        store.recover()  # the index created before the clock starts, as a running collector has it
        started = time.process_time()
        stored = sum(store.write_table(tenant=TENANT, dataset=DATASET, table=block).stored for block in blocks)
        spent = time.process_time() - started
        again = blocks[:2]
        started = time.process_time()
        known = sum(store.write_table(tenant=TENANT, dataset=DATASET, table=block).duplicates for block in again)
        replay = time.process_time() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    replayed = sum(block.num_rows for block in again)
    print(f"{table.num_rows:,} lines in blocks of {args.block:,}: stored {stored:,}, "
          f"{spent * 1e6 / table.num_rows:.2f} us of CPU a line ({spent:.2f} s); "
          f"replay of {replayed:,}: {known:,} known, {replay * 1e6 / replayed:.2f} us a line")


if __name__ == "__main__":
    main()
