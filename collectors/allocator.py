"""The Arrow memory pool of the processes that parse and store logs (`soc collect`, `soc ingest`).

A parse pass allocates and frees hundreds of column buffers of up to a few megabytes, and the store's
Parquet writer as many again. With pyarrow's bundled mimalloc a quarter to a third of that work's CPU was system
time, pages faulted in again every pass; through the C library's allocator the same work took a third of that system
time and about a fifth less CPU, with a lower peak (bench/README.md, `bench.ingest`). An operator's own choice
(`ARROW_DEFAULT_MEMORY_POOL`) is kept.
"""

from __future__ import annotations

import os

import pyarrow as pa

CHOICE = "ARROW_DEFAULT_MEMORY_POOL"


def use_system_allocator() -> str:
    """Arrow allocates through malloc from now on, unless `ARROW_DEFAULT_MEMORY_POOL` names a pool; returns
    the backend in use."""
    if not os.environ.get(CHOICE):
        pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)
