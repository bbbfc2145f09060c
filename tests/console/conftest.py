"""Browser test fixtures for the web console: a live case API, headless Chromium and axe-core.

- ``live_server``: the real case API app (``create_app``) served by uvicorn in a thread on a free
  port, on a SQLite database in a temporary home, seeded through the API (tenants, users and keys,
  alerts that open cases): one for the whole run.
- ``browser``: one headless Chromium for the whole run, driven by Selenium through Debian's
  chromium-driver; each test starts with no cookies.
- ``axe``: injects axe-core (installed from the npm registry by ``make setup`` into ``.cache/npm``,
  or ``SOC_AXE_JS``) into the current page and returns its violations.

When Chromium, chromium-driver, Selenium or axe-core is missing the tests skip and say which; under
``CI=true`` they fail instead (``make setup`` installs them there).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.settings import Settings
from tests.case_api.conftest import Headers, SocApi, build_alert
from tests.conftest import REPO, require

AXE_JS = Path(os.environ.get("SOC_AXE_JS", REPO / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"))
#: axe-core's impact levels that fail a page.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
WINDOW = (1366, 900)

TENANTS = {"northgate-hospital": "Northgate Hospital", "riverside-school": "Riverside School"}


@dataclass
class ConsoleWorld:
    """What the live server was seeded with: its URL, the users' API keys and the cases they can see."""

    url: str
    api: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)
    cases: dict[str, list[int]] = field(default_factory=dict)

    def headers(self, user: str) -> Headers:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def case(self, case_id: int, user: str = "analyst") -> dict[str, Any]:
        response = self.api.get(f"/api/v1/cases/{case_id}", headers=self.headers(user))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    home = tmp_path_factory.mktemp("console-home")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'cases.db'}")
    app = create_app(settings)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the case API did not start under uvicorn", pytrace=False)
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30) as api:
        world = ConsoleWorld(url=url, api=api)
        _seed(world, SocApi(api, app))
        yield world
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    app.state.engine.dispose()


def _seed(world: ConsoleWorld, soc: SocApi) -> None:
    """Two members, an analyst, a responder in each member, and cases opened by the correlator's alerts."""
    for tenant, name in TENANTS.items():
        soc.add_tenant(tenant, name)
    people = {
        "analyst": soc.headers(Role.SOC_ANALYST, name="ana.analyst"),
        "admin": soc.admin,
        **{tenant: soc.headers(Role.TENANT_RESPONDER, tenant, name=f"responder-{tenant}") for tenant in TENANTS},
    }
    world.keys = {user: header["Authorization"].removeprefix("Bearer ") for user, header in people.items()}
    for tenant in TENANTS:
        result = soc.ingest(
            build_alert(tenant, user="christophe", level="high", group_key=f"{tenant}-console"),
            build_alert(tenant, user="christophe", level="high", group_key=f"{tenant}-console", minutes=2),
            build_alert(tenant, user="mallory", level="medium", group_key=f"{tenant}-second", minutes=5),
        )
        world.cases[tenant] = sorted(set(result["cases"]))
        assert len(world.cases[tenant]) == 2, result


def _browser_missing() -> str | None:
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"{program} not found (Debian package {package}; `make setup` as root installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        require("headless Chromium", missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(shutil.which("chromedriver"))))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium: Any) -> Any:
    """The session's headless Chromium, with no cookies and a blank page at the start of each test."""
    _chromium.delete_all_cookies()
    _chromium.get("about:blank")
    return _chromium


@pytest.fixture(scope="session")
def _axe_source() -> str:
    if not AXE_JS.is_file():
        require("axe-core", f"axe-core not found at {AXE_JS} (`make setup` installs it from the npm registry)")
    return AXE_JS.read_text(encoding="utf-8")


Axe = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def axe(_axe_source: str) -> Axe:
    """``axe(driver)``: run axe-core on the current page and return its violations (every impact and rule tag)."""

    def run(driver: Any, context: str | None = None) -> list[dict[str, Any]]:
        driver.execute_script(_axe_source)
        results: dict[str, Any] = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(arguments[0] || document, {resultTypes: ['violations']})"
            ".then(r => done({violations: r.violations, url: r.url})).catch(e => done({error: String(e)}));",
            context,
        )
        if "error" in results:
            pytest.fail(f"axe-core failed on {driver.current_url}: {results['error']}", pytrace=False)
        violations: list[dict[str, Any]] = results["violations"]
        return violations

    return run


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical violations, one readable line each (rule, impact, the first elements)."""
    lines = []
    for violation in violations:
        if violation.get("impact") in BLOCKING_IMPACTS:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return lines
