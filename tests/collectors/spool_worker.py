"""A collector stand-in for the crash test: appends to the spool from two threads and drains into the store
(compacting now and then) until it is killed.

    python -m tests.collectors.spool_worker <home> <run>       # prints "ready", then works until killed
    python -m tests.collectors.spool_worker <home> finish      # drains what is left, compacts, exits 0

An appending thread writes, after each `append` returned, the batch's records to its own acknowledgement
file (`<home>/acks/`), one `write(2)` per batch, as a listener acknowledges a sender: what is listed there
was acknowledged and must reach the store exactly once. Every tenth record is not a line the parser
accepts, and must reach the dead letters instead.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore
from collectors.drain import Drainer
from collectors.records import RawRecord
from collectors.spool import Spool, SpoolFullError
from tests.collectors.spool_helpers import T0, line

TENANTS = ("council", "north-school")
THREE_DAYS = 3 * 24 * 3600


def payload(run: str, thread: int, batch: int, record: int) -> bytes:
    text = f"r{run}t{thread}b{batch}n{record}"
    if record % 10 == 9:
        return f"garbage {text}".encode()
    return line((batch * 7919 + record * 104729 + thread * 31) % THREE_DAYS, text)


def append_forever(spool: Spool, acks: Path, run: str, thread: int) -> None:
    fd = os.open(acks / f"run{run}-t{thread}.acks", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rng = random.Random(f"{run}-{thread}")
    for batch in range(10**9):
        tenant = TENANTS[(batch + thread) % 2]
        payloads = [payload(run, thread, batch, record) for record in range(rng.randint(1, 30))]
        records = [RawRecord(item, f"tcp 192.0.2.{thread}:5000", T0) for item in payloads]
        while True:
            try:
                spool.append(tenant=tenant, source="test.lines", records=records)
                break
            except SpoolFullError:
                time.sleep(0.01)  # backpressure, as a listener would stop reading
        os.write(fd, b"".join(f"{tenant} ".encode() + item + b"\n" for item in payloads))
        time.sleep(rng.uniform(0, 0.01))


def drain_forever(drainer: Drainer, store: ParquetEventStore) -> None:
    rng = random.Random()
    for number in range(10**9):
        if drainer.run_once(max_records=rng.randint(50, 2000)) == 0:
            time.sleep(0.01)
        if number % 5 == 4:
            store.compact(min_files=4)


def main(home: Path, run: str) -> None:
    spool = Spool(home / "spool", max_bytes=8 * 1024**2, segment_bytes=64 * 1024)
    store = ParquetEventStore(home / "events")
    drainer = Drainer(spool, store, DeadLetterStore(home / "deadletter"))
    if run == "finish":
        while drainer.run_once():
            pass
        store.compact(min_files=2)
        spool.close()
        return
    acks = home / "acks"
    acks.mkdir(parents=True, exist_ok=True)
    threads = [threading.Thread(target=append_forever, args=(spool, acks, run, thread), daemon=True)
               for thread in range(2)]
    threads.append(threading.Thread(target=drain_forever, args=(drainer, store), daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    threads[-1].join()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
