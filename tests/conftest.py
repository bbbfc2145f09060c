"""Fixtures shared by every test package: one local Spark session and the shared corpora."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def corpora() -> Path:
    """`../shared/corpora` (real data written by others); tests needing it skip in a bare clone."""
    if not CORPORA.is_dir():
        pytest.skip(f"shared corpora not found at {CORPORA} (a clone without ../shared)")
    return CORPORA


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session for the whole run: 2 cores, 2 shuffle partitions, UI off."""
    from correlator.spark import build_session

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
