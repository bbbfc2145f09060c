"""An analyst works a case in the browser from new to resolved, and the API shows the outcome."""

from __future__ import annotations

from typing import Any

from tests.console.harness import By, ConsoleWorld, Select, WebDriverException, WebDriverWait, ec, sign_in

HOSPITAL = "northgate-hospital"


def _submit(browser: Any, button_id: str) -> str:
    """Press a form's button and wait for the page it leads to; that page's flash message.

    While the old document is torn down, Chromium may answer a call on its nodes with a plain
    WebDriverException ("Node with given id does not belong to the document") rather than a stale
    element reference, so the wait polls through it until the old page is gone and the new one has
    its flash message.
    """
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()
    wait = WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,))
    wait.until(ec.staleness_of(old))
    flash = wait.until(ec.visibility_of_element_located((By.ID, "flash")))
    return str(flash.text)


def test_analyst_takes_a_case_from_new_to_resolved(live_server: ConsoleWorld, browser: Any) -> None:
    case_id = live_server.cases[HOSPITAL]["work"]
    assert live_server.case(case_id)["status"] == "new"
    sign_in(browser, live_server, "analyst", next_path="/console/queue")

    browser.find_element(By.ID, f"case-link-{case_id}").click()
    WebDriverWait(browser, 10).until(ec.url_contains(f"/console/cases/{case_id}"))
    assert browser.find_element(By.ID, "case-status").text == "new"
    assert browser.find_element(By.ID, "case-assignee").text == "nobody"

    assert "assigned to you" in _submit(browser, "assign-me")
    assert browser.find_element(By.ID, "case-assignee").text == "ana.analyst"

    Select(browser.find_element(By.ID, "status-select")).select_by_value("in_progress")
    assert "in_progress" in _submit(browser, "status-apply")
    assert browser.find_element(By.ID, "case-status").text == "in_progress"

    Select(browser.find_element(By.ID, "status-select")).select_by_value("resolved")
    Select(browser.find_element(By.ID, "resolution-select")).select_by_value("true_positive")
    assert "resolved" in _submit(browser, "status-apply")
    assert browser.find_element(By.ID, "case-status").text == "resolved (true positive)"

    note = "Root login came from the attacker's VPN exit; password rotated, MFA enforced on the bastion."
    browser.find_element(By.ID, "comment-body").send_keys(note)
    assert "comment added" in _submit(browser, "comment-add")
    shown = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "[data-testid=comment]")]
    assert any(note in text and "ana.analyst" in text for text in shown), shown

    # What the browser did is what the API holds.
    case = live_server.case(case_id)
    assert (case["status"], case["resolution"], case["assignee"]) == ("resolved", "true_positive", "ana.analyst")
    comments = live_server.api.get(f"/api/v1/cases/{case_id}/comments", headers=live_server.headers("analyst"))
    assert [(c["author"], c["body"]) for c in comments.json()] == [("ana.analyst", note)]
    timeline = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=timeline-entry]")]
    assert any("resolved" in entry for entry in timeline), timeline
