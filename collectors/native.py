"""The intake's optional compiled modules (`collectors/native/`, built by `setup.py`), or `None` for the pure path."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NATIVE_ENV = "SOC_NATIVE"


def enabled() -> bool:
    """False when `SOC_NATIVE=0`: the tests and benchmarks run the pure path on a machine that has the compiled one."""
    return os.environ.get(NATIVE_ENV, "1") != "0"


def load(name: str) -> ModuleType | None:
    """`collectors._<name>` when it was built and is enabled, else None."""
    if not enabled():
        return None
    try:
        return importlib.import_module(f"collectors._{name}")
    except ImportError:
        return None
