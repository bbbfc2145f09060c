"""Browser test fixtures for the web console (see ``harness.py``).

- ``live_server``: the real case API under uvicorn for the whole run, seeded through its API.
- ``browser``: one headless Chromium for the whole run; each test starts with no cookies.
- ``axe``: runs axe-core in the current page and returns its violations.

When Chromium, chromium-driver, Selenium or axe-core is missing the tests skip and say which; under
``CI=true`` they fail instead (``make setup`` installs them there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require
from tests.console.harness import (
    AXE_JS,
    ConsoleWorld,
    browser_missing,
    chromium,
    forget_everything,
    live_case_api,
    run_axe,
    seed_members,
)

Axe = Callable[[Any], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    with live_case_api(tmp_path_factory.mktemp("console-home")) as world:
        seed_members(world)
        yield world


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        require("headless Chromium", missing)
    with chromium() as driver:
        yield driver


@pytest.fixture
def browser(_chromium: Any) -> Any:
    """The session's headless Chromium, with no cookies and a blank page at the start of each test."""
    forget_everything(_chromium)
    return _chromium


@pytest.fixture(scope="session")
def _axe_source() -> str:
    if not AXE_JS.is_file():
        require("axe-core", f"axe-core not found at {AXE_JS} (`make setup` installs it from the npm registry)")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture
def axe(_axe_source: str) -> Axe:
    """``axe(driver)``: axe-core's violations on the current page (every impact and rule tag)."""

    def run(driver: Any) -> list[dict[str, Any]]:
        return run_axe(driver, _axe_source)

    return run
