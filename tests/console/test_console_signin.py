"""Signing in and out in the browser: a wrong key is refused with the reason, signing out ends the session."""

from __future__ import annotations

from typing import Any

from case_api.auth.models import Role
from tests.console.harness import (
    SESSION_COOKIE,
    By,
    ConsoleWorld,
    Keys,
    WebDriverWait,
    ec,
    navigation_status,
    sign_in,
)


def test_wrong_key_is_refused_on_the_sign_in_page(live_server: ConsoleWorld, browser: Any) -> None:
    browser.get(f"{live_server.url}/console/login")
    browser.find_element(By.ID, "api-key").send_keys("not-a-key", Keys.ENTER)
    error = WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "login-error")))
    assert "unknown or revoked API key" in error.text
    assert navigation_status(browser) == 401
    assert browser.get_cookie(SESSION_COOKIE) is None


def test_signing_out_ends_the_session(live_server: ConsoleWorld, browser: Any) -> None:
    live_server.add_user("night.shift", Role.SOC_ANALYST)
    sign_in(browser, live_server, "night.shift", next_path="/console/queue")
    session = browser.get_cookie(SESSION_COOKIE)["value"]

    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/console/login"))
    assert browser.get_cookie(SESSION_COOKIE) is None

    # The old cookie, put back, opens nothing: the session ended on the server.
    browser.add_cookie({"name": SESSION_COOKIE, "value": session, "path": "/console"})
    browser.get(f"{live_server.url}/console/queue")
    assert "/console/login" in browser.current_url
    assert browser.find_elements(By.ID, "api-key") and not browser.find_elements(By.ID, "signed-in-as")
