"""The queue worked with the keyboard alone: Tab and Enter reach the filters, a bulk action and a case link."""

from __future__ import annotations

from typing import Any

from tests.console.harness import (
    By,
    ConsoleWorld,
    Keys,
    WebDriverWait,
    ec,
    navigation_status,
    press,
    sign_in,
    tab_until,
)

SCHOOL = "riverside-school"


def test_queue_by_keyboard_alone(live_server: ConsoleWorld, browser: Any) -> None:
    sign_in(browser, live_server, "analyst", next_path="/console/queue")
    medium_case = live_server.cases[SCHOOL]["second"]
    assert live_server.case(medium_case)["severity"] == "medium"

    # The first Tab offers the skip link.
    first = tab_until(browser, "a", limit=1)
    assert first.text == "Skip to content"

    # Filters: severity by typing in the select, then Enter on the Filter button.
    tab_until(browser, "#filter-severity")
    press(browser, "medium")
    tab_until(browser, "#apply-filters")
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 10).until(ec.url_contains("severity=medium"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-case-id]")
    assert rows and all(r.find_element(By.CSS_SELECTOR, ".sev").text == "medium" for r in rows)

    # A bulk action: tick the case with Space, back to the assignee field, Enter on Apply.
    tab_until(browser, f"#select-{medium_case}")
    press(browser, Keys.SPACE)
    tab_until(browser, "#bulk-assignee", backwards=True)
    press(browser, "me")
    tab_until(browser, "#bulk-apply")
    press(browser, Keys.ENTER)
    flash = WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "flash")))
    assert "1 of 1" in flash.text
    assert live_server.case(medium_case)["assignee"] == "ana.analyst"
    assert "severity=medium" in browser.current_url  # the filters survive the action

    # A case link, opened with Enter.
    tab_until(browser, f"#case-link-{medium_case}")
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 10).until(ec.url_contains(f"/console/cases/{medium_case}"))
    assert navigation_status(browser) == 200
