"""Where the syslog intake's CPU goes, stage by stage, in one process: the bench.ingest stream parsed in
50,000-line blocks (`SyslogParser.parse_records`, as `soc collect`'s drainer does) and stored
(`ParquetEventStore.write_table`), `time.process_time` around each stage.

    python -m bench.ingest_stages                        # 200,000 lines, the compiled path and SOC_NATIVE=0
    python -m bench.ingest_stages --lines 200000 --pairs 3

Not a test: it prints microseconds of CPU per line for each stage, alternating the compiled fast paths
(`collectors/native/`) and the pure path (`SOC_NATIVE=0`) in the same process, A, B, A, B..., and the ratio
of the means. Stages: decode + redaction, the header (`split_headers`), the year-less time, the auth
fields, the event ids, the rest of the parse, and the store. Arrow allocates through malloc, as `soc collect`
sets it (`collectors.allocator`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import collectors.base
import collectors.syslog
from bench.ingest import CORPORA, OUT, build_lines
from citysoc.ids import Occurrences
from citysoc.store import ParquetEventStore
from collectors import ParserOptions, SyslogParser
from collectors.records import RecordBlock

BLOCK = 50_000
STAGES = {"decode+redact": (collectors.syslog, "redact_text_column"), "header": (collectors.syslog, "split_headers"),
          "time": (collectors.syslog, "resolve_yearless"), "auth": (collectors.syslog, "auth_fields"),
          "ids": (collectors.base, "hex_digests"), "ids occurrences": (collectors.base, "number_occurrences"),
          "ids pure": (collectors.base, "event_ids_of_keys")}


def timed(spent: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - started
    return wrapper


@contextmanager
def stage_timers(spent: dict[str, float]) -> Iterator[None]:
    originals = {name: getattr(module, attribute) for name, (module, attribute) in STAGES.items()}
    decode = collectors.syslog.decode
    for name, (module, attribute) in STAGES.items():
        setattr(module, attribute, timed(spent, name, originals[name]))
    collectors.syslog.decode = timed(spent, "decode+redact", decode)  # type: ignore[assignment]
    try:
        yield
    finally:
        for name, (module, attribute) in STAGES.items():
            setattr(module, attribute, originals[name])
        collectors.syslog.decode = decode  # type: ignore[assignment]


def blocks(path: Path, lines: int) -> list[RecordBlock]:
    payloads = path.read_bytes().split(b"\n")[:lines]
    received = datetime(2026, 1, 1, tzinfo=UTC)
    return [RecordBlock.of(payloads[start:start + BLOCK], received=received, origin_prefix="bench:", first=start)
            for start in range(0, len(payloads), BLOCK)]


def run(batches: list[RecordBlock], home: Path, *, compiled: bool) -> dict[str, float]:
    os.environ["SOC_NATIVE"] = "1" if compiled else "0"
    shutil.rmtree(home, ignore_errors=True)
    store = ParquetEventStore(home / "events")
    parser = SyslogParser(ParserOptions())
    occurrences = Occurrences()
    spent: dict[str, float] = defaultdict(float)
    with stage_timers(spent):
        for block in batches:
            started = time.process_time()
            parsed = parser.parse_records(block, tenant="bench", source="syslog", occurrences=occurrences)
            spent["parse"] += time.process_time() - started
            started = time.process_time()
            for dataset, table in parsed.tables.items():
                store.write_table(tenant="bench", dataset=dataset, table=table)
            spent["store"] += time.process_time() - started
    spent["ids"] += spent.pop("ids occurrences", 0.0) + spent.pop("ids pure", 0.0)
    return spent


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=200_000)
    options.add_argument("--pairs", type=int, default=3)
    arguments = options.parse_args(argv)
    path = build_lines(max(arguments.lines, 1_000_000), CORPORA)  # bench.ingest's stream, or its head
    batches = blocks(path, arguments.lines)
    count = sum(len(block) for block in batches)
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    home = OUT / "stages"
    run(batches[:1], home, compiled=True)  # imports and first-call costs outside the figures
    for pair in range(arguments.pairs):
        for compiled in (False, True):
            spent = run(batches, home, compiled=compiled)
            results[compiled].append(spent)
            figures = "  ".join(f"{name} {seconds / count * 1e6:.2f}" for name, seconds in sorted(spent.items()))
            print(f"pair {pair + 1} {'compiled' if compiled else 'pure    '} µs a line: {figures}", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    print(f"\nmeans over {arguments.pairs} pairs of {count:,} lines, µs of CPU a line (pure -> compiled, ratio):")
    for name in sorted({name for spent in results[False] + results[True] for name in spent}):
        pure = sum(spent.get(name, 0.0) for spent in results[False]) / arguments.pairs / count * 1e6
        fast = sum(spent.get(name, 0.0) for spent in results[True]) / arguments.pairs / count * 1e6
        print(f"  {name:15} {pure:6.2f} -> {fast:6.2f}  x{pure / fast if fast else float('inf'):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
