"""A member's responder in the browser: their own cases show, another member's case is a 404 by URL."""

from __future__ import annotations

from typing import Any

from tests.console.harness import ATTACKER, By, ConsoleWorld, navigation_status, sign_in

HOSPITAL, SCHOOL = "northgate-hospital", "riverside-school"


def test_member_sees_own_cases_and_another_members_case_is_not_found(live_server: ConsoleWorld, browser: Any) -> None:
    sign_in(browser, live_server, HOSPITAL)
    assert browser.current_url.endswith(f"/console/members/{HOSPITAL}")  # a member starts at their organisation
    browser.get(f"{live_server.url}/console/queue?status=all")
    assert HOSPITAL in browser.find_element(By.ID, "signed-in-as").text
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-case-id]")
    shown = {int(row.get_attribute("data-case-id")) for row in rows}
    assert shown == set(live_server.cases[HOSPITAL].values())

    # Asking for the other member's cases by the filter shows none of them.
    browser.get(f"{live_server.url}/console/queue?status=all&tenant={SCHOOL}")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-case-id]") == []

    for case_id in live_server.cases[SCHOOL].values():
        browser.get(f"{live_server.url}/console/cases/{case_id}")
        assert navigation_status(browser) == 404
        assert browser.find_element(By.ID, "error-title").text == "Not found"
        assert "riverside" not in browser.page_source.lower()

    own = live_server.cases[HOSPITAL]["campaign"]
    browser.get(f"{live_server.url}/console/cases/{own}")
    assert navigation_status(browser) == 200
    assert live_server.case(own)["title"] in browser.find_element(By.TAG_NAME, "h1").text
    # The raw records behind the alert, and the campaign without the other member's name.
    raw = [r.get_attribute("textContent") for r in browser.find_elements(By.CSS_SELECTOR, "[data-testid=raw-record]")]
    assert len(raw) == 3 and f"Accepted password for root from {ATTACKER}" in raw[-1], raw
    banner = browser.find_element(By.CSS_SELECTOR, "[data-testid=campaign-banner]").text
    assert "1 other member" in banner and "riverside" not in banner.lower(), banner
