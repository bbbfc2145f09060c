"""Fixtures shared by every test package: one local Spark session and the shared corpora.

A test that uses the `spark` fixture is marked `slow` here, so `-m "not slow"` never starts Spark.
Under `CI=true`, what a test needs from outside the repository (`../shared/corpora`) must be there: a
missing corpus fails the run instead of skipping its tests.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# Rich sizes its tables from COLUMNS when its console is made, which may be at import, before a test's
# own environment: one wide terminal for every test process (pytest-xdist workers have no terminal).
os.environ["COLUMNS"] = "250"

import pytest
import structlog
from pyspark.sql import SparkSession

from correlator.engine.session import build_session

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
IN_CI = os.environ.get("CI", "").lower() == "true"
FILE_SECONDS = REPO / "tests" / "file_seconds.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    # The longest files first (a stable sort: the order within a file stays). `make test` hands whole files to
    # its xdist workers in this order (--dist loadfile --no-loadscope-reorder), so the short files fill in at
    # the end instead of a long one running alone. A file's seconds come from tests/file_seconds.json
    # (`python -m tests.file_seconds`); a file not in it counts 10 s per slow test.
    known: dict[str, float] = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.exists() else {}
    seconds: dict[Path, float] = {}
    for item in items:
        name = item.path.relative_to(REPO).as_posix() if item.path.is_relative_to(REPO) else str(item.path)
        guess = seconds.get(item.path, 0.0) + (10.0 if item.get_closest_marker("slow") else 0.0)
        seconds[item.path] = known.get(name, guess)
    items.sort(key=lambda item: -seconds[item.path])


def require(what: str, reason: str) -> None:
    """Skip the test with `reason` (what is missing and why), or fail it under CI, where it must be present."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> None:
    """Every test starts from structlog's defaults: an in-process `soc` command configures logging for the
    whole process (level WARNING), which would otherwise hide info lines from a later test in the same worker."""
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def corpora() -> Path:
    """`../shared/corpora` (real data written by others); tests needing it skip in a bare clone."""
    if not CORPORA.is_dir():
        require("../shared/corpora", f"shared corpora not found at {CORPORA} (a clone without ../shared)")
    return CORPORA


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole run: 2 cores, 2 shuffle partitions, UI off."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = build_session(master="local[2]", shuffle_partitions=2, app_name="citysoc-tests")
    yield session
    session.stop()


@pytest.fixture
def soc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $SOC_HOME for one test."""
    home = tmp_path / "soc-home"
    monkeypatch.setenv("SOC_HOME", str(home))
    return home
