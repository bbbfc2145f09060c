"""A live case API and a headless Chromium, for the console's browser tests and its screenshots.

The real app (``create_app``) is served by uvicorn in a thread on a free port, on a SQLite database in
a given home, and seeded through its own API. Chromium is Debian's, driven by Selenium through
chromium-driver; axe-core comes from the npm registry (``make setup`` puts it in ``.cache/npm``).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.settings import Settings
from citysoc.deadletter import DeadLetterStore
from citysoc.health import HealthStore
from citysoc.store import ParquetEventStore
from collectors.ingest import IngestReport, ingest_files
from tests.case_api.conftest import Headers, SocApi, build_alert

try:  # without Selenium the browser fixture skips with the reason (fails under CI=true); the modules still import
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - the environment's
    ActionChains = By = Keys = ec = Select = WebDriverWait = None  # type: ignore[assignment,misc]
    WebDriverException = Exception  # type: ignore[assignment,misc]

REPO = Path(__file__).resolve().parents[2]
AXE_JS = Path(os.environ.get("SOC_AXE_JS", REPO / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"))
#: axe-core's impact levels that fail a page.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
WINDOW = (1366, 900)
SESSION_COOKIE = "citysoc_console"

HOSPITAL, SCHOOL = "northgate-hospital", "riverside-school"
TENANTS = {HOSPITAL: "Northgate Hospital", SCHOOL: "Riverside School"}


@dataclass
class ConsoleWorld:
    """What the live server was seeded with: its URL, the users' API keys and each member's cases by name."""

    url: str
    api: httpx.Client
    soc: SocApi
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)
    cases: dict[str, dict[str, int]] = field(default_factory=dict)  # member -> case name -> case id
    sources: dict[str, int] = field(default_factory=dict)  # member -> its syslog source's id
    sessions: dict[str, str] = field(default_factory=dict)  # user -> the console session cookie of a sign-in

    def headers(self, user: str) -> Headers:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def case(self, case_id: int, user: str = "analyst") -> dict[str, Any]:
        response = self.api.get(f"/api/v1/cases/{case_id}", headers=self.headers(user))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def add_user(self, user: str, role: Role, tenant: str | None = None) -> str:
        """A user with one API key (the key returned and kept under ``user``)."""
        header = self.soc.headers(role, tenant, name=user)
        self.keys[user] = header["Authorization"].removeprefix("Bearer ")
        return self.keys[user]


    def add_source(self, tenant: str, name: str, network: str) -> int:
        """A syslog-over-TCP source of the member, registered through the API; its id."""
        response = self.api.post("/api/v1/sources", headers=self.headers("admin"),
                                 json={"tenant_id": tenant, "kind": "syslog-tcp", "name": name, "networks": [network]})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def ingest_syslog(self, tenant: str, lines: list[str]) -> IngestReport:
        """Syslog lines through the real ingest path: events into the lake, unparsable lines into the
        dead-letter store, both under the API's ``SOC_HOME``."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "auth.log"
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            return ingest_files(tenant=tenant, source="syslog", paths=[path],
                                store=ParquetEventStore(self.settings.events_dir),
                                dead_letters=DeadLetterStore(self.settings.deadletter_dir))

    def store_syslog(self, tenant: str, lines: list[str]) -> list[dict[str, Any]]:
        """Syslog lines through the real ingest path into the lake the API reads evidence from; the events
        stored from them (with their ids), oldest first."""
        assert self.ingest_syslog(tenant, lines).stored == len(lines)
        lake = ParquetEventStore(self.settings.events_dir).arrow_dataset("system.auth", tenants=[tenant])
        assert lake is not None, "the sshd lines were not stored as system.auth"
        rows = [row for row in lake.to_table().to_pylist() if row["event"]["original"] in set(lines)]
        assert len(rows) == len(lines), f"{len(lines)} lines, {len(rows)} events stored"
        return sorted(rows, key=lambda row: (row["@timestamp"], row["event"]["id"]))


def evidence_alert(tenant: str, rows: list[dict[str, Any]], *, alert_id: str, title: str, level: str,
                   tags: list[str], entities: dict[str, list[str]]) -> dict[str, Any]:
    """An alert in the correlator's shape over stored events: from the first event's time to the last's."""
    times = sorted(row["@timestamp"] for row in rows)
    return {
        "id": alert_id, "@timestamp": times[0].isoformat(), "organization": {"id": tenant},
        "rule": {"id": f"rule-{title.lower().replace(' ', '-')}"[:200], "title": title, "level": level, "tags": tags},
        "event": {"ids": [row["event"]["id"] for row in rows], "dataset": "system.auth", "end": times[-1].isoformat()},
        "entities": entities,
    }


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_case_api(home: Path) -> Iterator[ConsoleWorld]:
    """The case API under uvicorn on 127.0.0.1 (a free port), on a new SQLite database under ``home``."""
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'cases.db'}")
    app = create_app(settings)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console-live-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the case API did not start under uvicorn")
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as api:
            world = ConsoleWorld(url=url, api=api, soc=SocApi(api, app), settings=settings)
            world.keys["admin"] = world.soc.admin["Authorization"].removeprefix("Bearer ")
            yield world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.engine.dispose()


#: The attacker's address that both members' campaign cases share.
ATTACKER = "203.0.113.50"
#: Lines the hospital's sender wrote that are no syslog: dead letters, shown on its sources pages as text.
DEAD_LINES = ["<script>alert('dead letter')</script> not syslog", "<38>1 2024-13-45T99:99:99Z web sshd - - - bad time"]


def seed_members(world: ConsoleWorld) -> None:
    """Two members, an analyst and a responder in each member; per member three cases opened by alerts:
    ``work`` (two high alerts), ``second`` (one medium alert) and ``campaign`` (the attacker seen at both)."""
    for tenant, name in TENANTS.items():
        world.soc.add_tenant(tenant, name)
    world.add_user("ana.analyst", Role.SOC_ANALYST)
    world.keys["analyst"] = world.keys["ana.analyst"]
    for tenant in TENANTS:
        world.add_user(f"responder-{tenant}", Role.TENANT_RESPONDER, tenant)
        world.keys[tenant] = world.keys[f"responder-{tenant}"]
    batches = {
        "work": lambda t: [build_alert(t, user="christophe", level="high", group_key=f"{t}-work", minutes=n)
                           for n in (0, 2)],
        "second": lambda t: [build_alert(t, user="mallory", level="medium", group_key=f"{t}-second", minutes=5)],
        "campaign": lambda t: [evidence_alert(
            t, world.store_syslog(t, [
                f"<38>1 2024-07-31T13:36:0{n}Z {t}-web sshd 4121 - - {outcome} password for root from {ATTACKER} "
                f"port 5012{n} ssh2" for n, outcome in enumerate(("Failed", "Failed", "Accepted"))
            ]),
            alert_id=f"{t}-root-login", title="SSH Login As Root Accepted", level="high", tags=["attack.t1078"],
            entities={"source.ip": [ATTACKER], "user.name": ["root"], "host.name": [f"{t}-web"]},
        )],
    }
    for n, tenant in enumerate(TENANTS):
        world.sources[tenant] = world.add_source(tenant, "bastion auth.log", f"10.{20 + n}.0.0/16")
        # The intake's drainer counts each source's batches: an hour of them, a few records dead-lettered.
        health = HealthStore(world.settings.health_dir)
        now = datetime.now(UTC)
        for minute in range(60, 0, -5):
            received = now - timedelta(minutes=minute)
            health.record(source_id=world.sources[tenant], tenant=tenant, events=40 + minute, dead=minute % 3,
                          last_event_time=received, received=received, last_dead_origin="10.20.4.7",
                          last_dead_reason="unparsable syslog line: no PRI part" if minute % 3 else None)
    assert world.ingest_syslog(HOSPITAL, DEAD_LINES).dead_lettered == len(DEAD_LINES)
    for name, alerts in batches.items():
        for tenant in TENANTS:
            cases = world.soc.ingest(*alerts(tenant))["cases"]
            assert len(cases) == 1, cases
            world.cases.setdefault(tenant, {})[name] = cases[0]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (what to install), or ``None``."""
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"{program} not found (Debian package {package}; `make setup` as root installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven through chromium-driver (never a browser Selenium downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-GB", "--force-prefers-reduced-motion",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(shutil.which("chromedriver"))))
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


def forget_everything(driver: Any) -> None:
    """Every cookie of every site gone, and a blank page: the browser of a new visitor."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get("about:blank")


def run_axe(driver: Any, axe_source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the current page (every impact and rule tag)."""
    driver.execute_script(axe_source)
    results: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done({violations: r.violations})).catch(e => done({error: String(e)}));"
    )
    if "error" in results:
        raise RuntimeError(f"axe-core failed on {driver.current_url}: {results['error']}")
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical violations, one readable line each (rule, impact, the first elements)."""
    lines = []
    for violation in violations:
        if violation.get("impact") in BLOCKING_IMPACTS:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return lines


def sign_in(driver: Any, world: ConsoleWorld, user: str, next_path: str | None = None) -> None:
    """Sign in on the console's sign-in page with ``user``'s API key, as a person would (type, press Enter)."""
    query = f"?next={next_path}" if next_path else ""
    driver.get(f"{world.url}/console/login{query}")
    field_ = WebDriverWait(driver, 10).until(ec.element_to_be_clickable((By.ID, "api-key")))
    field_.send_keys(world.keys[user], Keys.ENTER)
    WebDriverWait(driver, 10).until(
        lambda d: "/console/login" not in d.current_url or d.find_elements(By.ID, "login-error")
    )
    errors = driver.find_elements(By.ID, "login-error")
    assert not errors, f"{user} could not sign in: {errors[0].text}"
    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie["httpOnly"], cookie
    world.sessions[user] = cookie["value"]


def resume(driver: Any, world: ConsoleWorld, user: str) -> None:
    """Signed in as ``user`` again with the session of an earlier sign-in (the form once per user and run)."""
    if user not in world.sessions:
        sign_in(driver, world, user)
        return
    driver.get(f"{world.url}/console/static/console.css")  # a cookie is set on the page's own site
    driver.add_cookie({"name": SESSION_COOKIE, "value": world.sessions[user], "path": "/console", "httpOnly": True,
                       "sameSite": "Lax"})


def navigation_status(driver: Any) -> int:
    """The HTTP status of the page the browser shows (Navigation Timing's ``responseStatus``)."""
    status: int = driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")
    return status


def press(driver: Any, *keys: str) -> None:
    """Press keys in the focused element, as a keyboard would (no element is clicked)."""
    ActionChains(driver).send_keys(*keys).perform()


def tab_until(driver: Any, css: str, *, backwards: bool = False, limit: int = 80) -> Any:
    """Press Tab (Shift+Tab when ``backwards``) until the focused element matches ``css``; that element.

    Fails with the focus path when ``limit`` presses do not get there (a control keyboard users cannot reach).
    """
    visited: list[str] = []
    for _ in range(limit):
        chain = ActionChains(driver)
        if backwards:
            chain.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
        else:
            chain.send_keys(Keys.TAB)
        chain.perform()
        found = driver.execute_script(
            "const e = document.activeElement; return [e.matches(arguments[0]), e.id || e.tagName + ':' + "
            "(e.textContent || '').trim().slice(0, 20)];",
            css,
        )
        if found[0]:
            element = driver.switch_to.active_element
            ring = driver.execute_script(
                "const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth, s.boxShadow];",
                element,
            )
            # WCAG 2.4.7: a keyboard user sees where the focus is (axe-core does not check this).
            visible = (ring[0] != "none" and ring[1] != "0px") or ring[2] != "none"
            assert visible, f"{css} has no focus indicator: {ring}"
            return element
        visited.append(found[1])
    raise AssertionError(f"{limit} presses of {'Shift+' if backwards else ''}Tab did not reach {css}: {visited}")
