"""The browser harness itself: the live server answers a real browser, axe-core runs in its pages."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Axe
from tests.console.harness import By, ConsoleWorld, WebDriverWait, blocking, ec


def test_docs_page_renders_offline_in_chromium(live_server: ConsoleWorld, browser: Any) -> None:
    browser.get(f"{live_server.url}/api/v1/docs")
    title = WebDriverWait(browser, 20).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert "CitySOC case API" in title.text
    # Every script and style sheet came from this origin (the page works without internet access).
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert sources and all(source.startswith(live_server.url) for source in sources), sources


def test_axe_reports_what_a_page_gets_wrong(browser: Any, axe: Axe) -> None:
    browser.get("data:text/html,<html><body><img src='x.png'><button></button></body></html>")
    found = blocking(axe(browser))
    assert any(line.startswith("image-alt (critical)") for line in found), found
    assert any(line.startswith("button-name (critical)") for line in found), found
