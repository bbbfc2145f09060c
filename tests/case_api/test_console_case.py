"""The console's case page: what it shows (alerts, raw evidence from a real lake, observables, ATT&CK, tasks,
comments, audit timeline, the campaign banner as each role may see it) and its actions, which go through the
API's service functions with the page's version as If-Match."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from case_api.settings import Settings
from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore
from collectors.ingest import ingest_files
from tests.case_api.console_world import ATTACKER, HOSPITAL, SCHOOL, World, world_fixture
from tests.case_api.test_case_api_evidence import alert_for, stored

SSHD = [
    "Dec 10 06:55:46 web01 sshd[24200]: Invalid user webmaster from 203.0.113.9",
    "Dec 10 06:55:48 web01 sshd[24200]: Failed password for invalid user webmaster from 203.0.113.9 port 38926 ssh2",
    "Dec 10 06:56:01 web01 sshd[24203]: Failed password for root from 203.0.113.9 port 38930 ssh2",
]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from world_fixture(request, tmp_path_factory)


def _version(html: str) -> str:
    match = re.search(r'name="version" value="(\d+)"', html)
    assert match is not None
    return match.group(1)


def _status(html: str) -> str:
    match = re.search(r'id="case-status" data-testid="case-status">([^<(]+)', html)
    assert match is not None
    return match.group(1).strip()


def test_an_analyst_takes_a_case_from_new_to_resolved_with_a_comment(world: World) -> None:
    browser = world.browser("ann")
    case_id = world.cases[HOSPITAL][1]
    page = browser.get(f"/console/cases/{case_id}")
    assert page.status_code == 200 and _status(page.text) == "new"
    assert "server-timing" in page.headers
    taken = browser.post(f"/console/cases/{case_id}/assign-me", {"version": _version(page.text)})
    assert taken.status_code == 303 and taken.headers["location"] == f"/console/cases/{case_id}"
    page = browser.get(f"/console/cases/{case_id}")
    assert "assigned to you" in page.text and 'data-testid="case-assignee">ann<' in page.text
    moved = browser.post(f"/console/cases/{case_id}/status", {"version": _version(page.text), "status": "in_progress"})
    assert moved.status_code == 303
    page = browser.get(f"/console/cases/{case_id}")
    assert _status(page.text) == "in_progress"
    browser.post(f"/console/cases/{case_id}/comments", {"body": "Password spray from a known scanner <b>x</b>"})
    page = browser.get(f"/console/cases/{case_id}")
    assert "Password spray from a known scanner &lt;b&gt;x&lt;/b&gt;" in page.text  # escaped, never markup
    browser.post(f"/console/cases/{case_id}/status", {"version": _version(page.text), "status": "resolved",
                                                      "resolution": "true_positive"})
    case = world.soc.case(case_id)
    assert (case["status"], case["resolution"], case["assignee"]) == ("resolved", "true_positive", "ann")
    actions = [(e["actor"], e["action"]) for e in case["events"]]
    assert ("ann", "assigned") in actions and ("ann", "commented") in actions
    assert [e["detail"]["to"] for e in case["events"] if e["action"] == "status_changed"] == ["in_progress", "resolved"]
    timeline = browser.get(f"/console/cases/{case_id}").text
    assert timeline.count('data-testid="timeline-entry"') == len(case["events"])


def test_a_stale_version_is_refused_and_shown_not_overwritten(world: World) -> None:
    browser = world.browser("ann")
    case_id = world.cases[HOSPITAL][2]
    stale = _version(browser.get(f"/console/cases/{case_id}").text)
    world.soc.client.patch(f"/api/v1/cases/{case_id}", json={"status": "on_hold"}, headers=world.soc.analyst)
    refused = browser.post(f"/console/cases/{case_id}/status", {"version": stale, "status": "in_progress"})
    assert refused.status_code == 303
    page = browser.get(f"/console/cases/{case_id}")
    assert "not done: case" in page.text and f"is at version {int(stale) + 1}, not {stale}" in page.text
    assert _status(page.text) == "on_hold"
    closing = browser.post(f"/console/cases/{case_id}/status", {"version": _version(page.text), "status": "closed"})
    assert closing.status_code == 303
    assert "closing a case needs a resolution" in browser.get(f"/console/cases/{case_id}").text
    assert world.soc.case(case_id)["status"] == "on_hold"


def test_the_page_shows_alerts_observables_attack_tasks_and_the_raw_evidence(world: World, tmp_path: Path) -> None:
    settings: Settings = world.app.state.settings
    log = tmp_path / "auth.log"
    log.write_text("\n".join(SSHD) + "\n")
    store = ParquetEventStore(settings.events_dir)
    ingest_files(tenant=HOSPITAL, source="syslog", paths=[log], store=store,
                 dead_letters=DeadLetterStore(settings.deadletter_dir), year=2024)
    rows = stored(store, HOSPITAL, "system.auth")
    alert: dict[str, Any] = alert_for(HOSPITAL, rows, name="console-evidence")
    alert["rule"] = {**alert["rule"], "tags": ["attack.credential_access", "attack.t1110.001"]}
    [case_id] = world.soc.ingest(alert)["cases"]
    page = world.browser("ann").get(f"/console/cases/{case_id}").text
    assert page.count('data-testid="evidence-event"') == 3
    for line in SSHD:
        assert line.split(": ", 1)[1] in page  # each raw record, as received
    assert "T1110.001" in page and "https://attack.mitre.org/techniques/T1110/001/" in page
    assert "203.0.113.9" in page and "TLP:AMBER" in page
    assert "SSH Brute Force" in page
    added = world.soc.client.post(f"/api/v1/cases/{case_id}/tasks", json={"title": "Block 203.0.113.9 at the edge"},
                                  headers=world.soc.analyst)
    assert added.status_code == 201
    browser = world.browser("ann")
    assert "Block 203.0.113.9 at the edge" in browser.get(f"/console/cases/{case_id}").text
    browser.post(f"/console/cases/{case_id}/tasks/{added.json()['id']}", {"status": "done"})
    [task] = [t for t in world.soc.client.get(f"/api/v1/cases/{case_id}/tasks", headers=world.soc.analyst).json()
              if t["id"] == added.json()["id"]]
    assert (task["status"], task["done_by"]) == ("done", "ann")


def test_the_campaign_banner_links_other_members_for_the_city_and_is_a_count_for_a_member(world: World) -> None:
    hospital_case, school_case = world.campaign_cases[HOSPITAL], world.campaign_cases[SCHOOL]
    city = world.browser("ann").get(f"/console/cases/{hospital_case}").text
    assert 'data-testid="campaign-banner"' in city and ATTACKER in city
    assert f'href="/console/members/{SCHOOL}"' in city and f'href="/console/cases/{school_case}"' in city
    member = world.browser("hugh").get(f"/console/cases/{hospital_case}").text
    assert "also seen at 1 other member organisation" in member and ATTACKER in member
    assert SCHOOL not in member and f"/console/cases/{school_case}" not in member
    assert "Riverside" not in member
    queue = world.browser("hugh").get("/console/queue", status="all").text
    assert "also seen at 1 other member organisation" in queue and SCHOOL not in queue


def test_merge_from_the_case_page_and_a_viewer_has_no_actions(world: World) -> None:
    browser = world.browser("sam")  # the school's responder works its own cases
    target, source = world.cases[SCHOOL][0], world.cases[SCHOOL][1]
    page = browser.get(f"/console/cases/{target}")
    assert browser.post(f"/console/cases/{target}/merge", {"version": _version(page.text),
                                                           "sources": str(source)}).status_code == 303
    assert world.soc.case(source)["merged_into_id"] == target
    viewer = world.browser("vera")
    page = viewer.get(f"/console/cases/{world.cases[HOSPITAL][0]}")
    assert page.status_code == 200 and 'id="status-form"' not in page.text and 'id="comment-form"' not in page.text
    refused = viewer.post(f"/console/cases/{world.cases[HOSPITAL][0]}/comments", {"body": "hello"})
    assert refused.status_code == 403
