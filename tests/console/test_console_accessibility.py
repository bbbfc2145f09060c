"""axe-core in every console page, as the analyst and as a member see it: no serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import Axe
from tests.console.harness import HOSPITAL, SCHOOL, ConsoleWorld, blocking, navigation_status, resume

# (page, who is signed in, path; "{work}"/"{campaign}"/"{source}" are the hospital's cases and source,
# "{other}" the school's case, a 404 for the hospital)
PAGES = [
    ("sign-in", None, "/console/login"),
    ("queue", "analyst", "/console/queue"),
    ("case", "analyst", "/console/cases/{campaign}"),
    ("metrics", "analyst", "/console/metrics"),
    ("sources", "analyst", "/console/sources"),
    ("member cases", HOSPITAL, "/console/queue"),
    ("member case", HOSPITAL, "/console/cases/{campaign}"),
    ("member page", HOSPITAL, f"/console/members/{HOSPITAL}"),
    ("member sources", HOSPITAL, "/console/sources"),
    ("member source", HOSPITAL, "/console/sources/{source}"),
    ("member SLA figures", HOSPITAL, "/console/metrics"),
    ("onboarding", HOSPITAL, f"/console/members/{HOSPITAL}/onboarding"),
    ("not found", HOSPITAL, "/console/cases/{other}"),
]


@pytest.mark.parametrize(("page", "user", "path"), PAGES, ids=[page for page, _, _ in PAGES])
def test_page_has_no_serious_accessibility_violation(
    live_server: ConsoleWorld, browser: Any, axe: Axe, page: str, user: str | None, path: str
) -> None:
    if user is not None:
        resume(browser, live_server, user)
    names = {**live_server.cases[HOSPITAL], "source": live_server.sources[HOSPITAL],
             "other": live_server.cases[SCHOOL]["work"]}
    browser.get(live_server.url + path.format(**names))
    assert navigation_status(browser) == (404 if page == "not found" else 200), f"{page}: {browser.current_url}"
    found = blocking(axe(browser))
    assert not found, f"{page} ({path}):\n" + "\n".join(found)
