"""A member's sources in the browser: data health, the last dead letters shown as text, no other member's source."""

from __future__ import annotations

from typing import Any

from tests.console.harness import DEAD_LINES, HOSPITAL, SCHOOL, By, ConsoleWorld, navigation_status, sign_in


def test_member_source_page_shows_health_and_dead_letters(live_server: ConsoleWorld, browser: Any) -> None:
    sign_in(browser, live_server, HOSPITAL)
    browser.get(f"{live_server.url}/console/sources/{live_server.sources[HOSPITAL]}")
    assert navigation_status(browser) == 200
    assert "never" not in browser.find_element(By.ID, "source-last-event").text
    assert "%" in browser.find_element(By.ID, "source-parse-errors").text
    assert browser.find_elements(By.CSS_SELECTOR, "#source-volume svg, svg#source-volume")
    # A dead letter's raw record is text on the page, never markup: the script in it did not run.
    raws = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "[data-testid=dead-letter] pre")]
    assert set(DEAD_LINES) <= set(raws), raws
    assert browser.execute_script("return document.querySelectorAll('#dead-letters script').length") == 0

    browser.get(f"{live_server.url}/console/sources/{live_server.sources[SCHOOL]}")
    assert navigation_status(browser) == 404
    assert SCHOOL not in browser.page_source
