"""The parsing processes' Arrow memory pool: malloc, unless the operator named another one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = "from collectors.allocator import use_system_allocator; print(use_system_allocator())"


@pytest.mark.parametrize(("chosen", "expected"), [(None, "system"), ("jemalloc", "jemalloc"), ("mimalloc", "mimalloc")])
def test_malloc_unless_the_operator_chose_a_pool(chosen: str | None, expected: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected
