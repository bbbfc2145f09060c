"""The queue shows a new case without a reload (its rows are fetched again every few seconds)."""

from __future__ import annotations

from typing import Any

from tests.case_api.conftest import build_alert
from tests.console.harness import By, ConsoleWorld, WebDriverWait, sign_in

SCHOOL = "riverside-school"


def test_new_case_appears_in_the_open_queue_without_reload(live_server: ConsoleWorld, browser: Any) -> None:
    sign_in(browser, live_server, "analyst", next_path="/console/queue")
    browser.execute_script("window.stillThisPage = true;")
    before = {row.get_attribute("data-case-id") for row in browser.find_elements(By.CSS_SELECTOR, "tr[data-case-id]")}

    cases = live_server.soc.ingest(build_alert(SCHOOL, user="eve", level="critical", group_key=f"{SCHOOL}-live"))
    new_case = cases["cases"][0]
    live_server.cases[SCHOOL]["live"] = new_case
    assert str(new_case) not in before

    row = WebDriverWait(browser, 15).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-case-id='{new_case}']")
    )[0]
    assert "new-row" in row.get_attribute("class")
    assert browser.find_element(By.ID, "queue-status").text == "1 new case in the queue"
    assert browser.execute_script("return window.stillThisPage === true")  # the page was not reloaded
