"""The console's member pages (cases, SLA figures, sources with data health, dead letters, onboarding), the
metrics page, and the tenant scope on every console URL: a member's users get 404 for another member's pages
(on SQLite and once on PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from case_api.alerts.models import Alert
from case_api.settings import Settings
from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.health import HealthStore
from tests.case_api.console_world import HOSPITAL, SCHOOL, World, world_fixture


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from world_fixture(request, tmp_path_factory)


@pytest.fixture(scope="module")
def fed(world: World) -> dict[str, dict[str, Any]]:
    """A UDP source per member; the intake stored events and dead letters for both."""
    sources = {}
    for tenant, network in ((HOSPITAL, "192.0.2.0/24"), (SCHOOL, "198.51.100.0/24")):
        response = world.soc.client.post("/api/v1/sources", headers=world.soc.admin, json={
            "tenant_id": tenant, "name": f"{tenant} firewall", "kind": "syslog-udp", "networks": [network]})
        assert response.status_code == 201, response.text
        sources[tenant] = response.json()
    settings: Settings = world.app.state.settings
    now = datetime.now(UTC)
    health = HealthStore(settings.health_dir)
    health.record(source_id=sources[HOSPITAL]["id"], tenant=HOSPITAL, events=40, dead=10,
                  last_event_time=now - timedelta(minutes=3), last_dead_reason="not an RFC 3164 or 5424 message",
                  last_dead_origin="udp 192.0.2.7:514", received=now)
    health.record(source_id=sources[SCHOOL]["id"], tenant=SCHOOL, events=7, dead=1,
                  last_dead_reason="school-only reason", received=now)
    letters = DeadLetterStore(settings.deadletter_dir)
    letters.put([DeadLetter(HOSPITAL, "syslog", f"udp 192.0.2.7 #{i}", "not syslog", f"hospital raw {i}",
                            received=(now - timedelta(minutes=10 - i)).isoformat()) for i in range(3)])
    letters.put([DeadLetter(SCHOOL, "syslog", "udp 198.51.100.3 #1", "school reason", "school secret raw",
                            received=now.isoformat())])
    return sources


def test_a_member_lands_on_its_page_with_cases_sla_sources_health_and_dead_letters(
    world: World, fed: dict[str, dict[str, Any]]
) -> None:
    browser = world.browser("hugh")
    start = browser.http.get("/console/")
    assert start.headers["location"] == f"/console/members/{HOSPITAL}"
    page = browser.get(f"/console/members/{HOSPITAL}")
    assert page.status_code == 200
    text = page.text
    shown = {int(n) for n in re.findall(r'data-testid="member-case"[^>]*|data-case-id="(\d+)"', text) if n}
    assert shown and shown <= set(world.cases[HOSPITAL])
    assert "also seen at 1 other member organisation" in text or world.campaign_cases[HOSPITAL] not in shown
    assert 'id="member-sla-table"' in text and 'data-testid="sla-row"' in text
    assert f"{HOSPITAL} firewall" in text and "hospital raw 2" in text
    assert "20.0% (10)" in text  # 10 dead of 50 records this hour
    assert "not an RFC 3164 or 5424 message" in text
    assert 'role="img"' in text and "Events per minute, last hour" in text
    for other in (SCHOOL, "school secret raw", "school reason", "school-only reason", f"{SCHOOL} firewall"):
        assert other not in text


def test_the_source_page_and_onboarding_reuse_the_intakes_instructions(
    world: World, fed: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOC_COLLECT_HOST", "intake.soc.example.org")
    browser = world.browser("hugh")
    page = browser.get(f"/console/sources/{fed[HOSPITAL]['id']}")
    assert page.status_code == 200
    assert 'target="intake.soc.example.org" port="5514" protocol="udp"' in page.text.replace("&#34;", '"')
    assert "hospital raw 0" in page.text and "20.0% (10 records)" in page.text
    onboarding = browser.get(f"/console/members/{HOSPITAL}/onboarding", kind="http")
    assert onboarding.status_code == 200
    config = onboarding.text.replace("&#39;", "'")
    assert "https://" not in config and "http://intake.soc.example.org:8514/v1/events" in config
    assert "Authorization: Bearer &lt;TOKEN&gt;" in config
    listing = browser.get("/console/sources")
    assert f"{HOSPITAL} firewall" in listing.text and f"{SCHOOL} firewall" not in listing.text
    city = world.browser("ann").get("/console/sources")
    assert f"{HOSPITAL} firewall" in city.text and f"{SCHOOL} firewall" in city.text


def test_the_metrics_page_shows_mtta_mttr_per_member_and_alert_volume_charts(world: World) -> None:
    browser = world.browser("lead")
    page = browser.get("/console/metrics", days=7)
    assert page.status_code == 200 and "server-timing" in page.headers
    metrics = world.soc.client.get("/api/v1/metrics", headers=world.soc.analyst).json()
    rows = page.text.split('id="metrics-rows"')[1]
    for row in metrics["rows"]:
        assert row["tenant_id"] in rows
    assert rows.count('data-testid="sla-row"') == len(metrics["rows"])
    assert "Alerts per day, aws.cloudtrail" in page.text and "Alerts per day, system.auth" not in page.text
    chart = page.text.split("Alerts per day, aws.cloudtrail")[1].split("</svg>")[0]
    bars = {day: int(count) for day, count in re.findall(r"<title>(\d{4}-\d\d-\d\d): (\d+)</title>", chart)}
    with world.app.state.session_factory() as session:  # the days they were received (the module's world is older)
        received = {moment.date().isoformat() for moment in session.scalars(select(Alert.received_at))}
    assert sum(bars[day] for day in received) == sum(bars.values()) == 7  # the world's seven alerts, aws.cloudtrail
    member = world.browser("hugh").get("/console/metrics").text
    assert HOSPITAL in member.split('id="metrics-rows"')[1] and SCHOOL not in member


@pytest.mark.parametrize("world", ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)], indirect=True)
def test_another_members_pages_are_404_and_its_data_never_shows(world: World, fed: dict[str, dict[str, Any]]) -> None:
    browser = world.browser("hugh")
    browser.get("/console/queue")
    school_case, school_source = world.cases[SCHOOL][0], fed[SCHOOL]["id"]
    for path in (f"/console/cases/{school_case}", f"/console/cases/{school_case}?evidence_offset=20",
                 f"/console/members/{SCHOOL}", f"/console/members/{SCHOOL}/onboarding",
                 f"/console/sources/{school_source}", "/console/cases/999999", "/console/members/nobody"):
        response = browser.http.get(path)
        assert response.status_code == 404, path
        # the same answer as for a missing one; at most the id asked for is echoed, never the member's data
        assert "Not found" in response.text and "Riverside School" not in response.text
    for action, data in (("assign-me", {}), ("status", {"status": "closed", "resolution": "benign"}),
                         ("comments", {"body": "crossing"}), ("merge", {"sources": world.cases[HOSPITAL][0]})):
        assert browser.post(f"/console/cases/{school_case}/{action}", data).status_code == 404, action
    crossing = browser.post(f"/console/cases/{world.cases[HOSPITAL][0]}/merge", {"sources": school_case})
    assert crossing.status_code == 404
    bulk = browser.post("/console/queue/bulk", {"action": "close", "resolution": "benign", "case_ids": school_case})
    assert bulk.status_code == 303
    assert "not found" in browser.get("/console/queue").text
    school = world.soc.case(school_case)
    assert school["status"] != "closed" and not any(e["actor"] == "hugh" for e in school["events"])
    for path, params in (("/console/queue", {"tenant": SCHOOL, "status": "all"}),
                         ("/console/queue/rows", {"tenant": SCHOOL, "status": "all"}),
                         ("/console/metrics", {"tenant": SCHOOL}), ("/console/sources", {})):
        text = browser.get(path, **params).text
        assert f'data-case-id="{school_case}"' not in text and "Riverside School" not in text, path
        assert f"{SCHOOL} firewall" not in text and "school" not in text.replace(SCHOOL, ""), path
