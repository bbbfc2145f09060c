"""Data health and dead letters in the API, as the intake writes them under SOC_HOME. A tenant's keys see
their own sources and records only: the tests try another tenant's source id, tenant filter and records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from case_api.auth.models import Role
from case_api.settings import Settings
from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.health import HealthStore

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

NG, RS = "northgate-hospital", "riverside-school"


def add(soc: SocApi, tenant: str, name: str, network: str) -> dict[str, Any]:
    response = soc.client.post("/api/v1/sources", headers=soc.admin, json={
        "tenant_id": tenant, "name": name, "kind": "syslog-udp", "networks": [network]})
    assert response.status_code == 201, response.text
    return dict(response.json())


def just_recorded(events: int, *, at: datetime) -> list[list[int]]:
    """The `events_per_minute` a reader may show for `events` received `at`: the reader counts the hour before its
    own clock, which may have passed a minute boundary since."""
    turned = int(datetime.now(UTC).timestamp() // 60) - int(at.timestamp() // 60)
    return [[events if minute == 59 - lag else 0 for minute in range(60)] for lag in range(turned + 1)]


@pytest.fixture
def fed(soc: SocApi, settings: Settings) -> dict[str, dict[str, Any]]:
    """Two tenants with one UDP source each; the intake has stored events and dead letters for both."""
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    ng, rs = add(soc, NG, "dmz", "192.0.2.0/24"), add(soc, RS, "lab", "198.51.100.0/24")
    now = datetime.now(UTC)
    health = HealthStore(settings.health_dir)
    health.record(source_id=ng["id"], tenant=NG, events=40, dead=10, last_event_time=now - timedelta(minutes=3),
                  last_dead_reason="not an RFC 3164 or 5424 message", last_dead_origin="udp 192.0.2.7:514",
                  received=now)
    health.record(source_id=rs["id"], tenant=RS, events=7, dead=1, last_dead_reason="riverside's own reason",
                  received=now)
    letters = DeadLetterStore(settings.deadletter_dir)
    letters.put([DeadLetter(NG, "syslog", f"udp 192.0.2.7 #{i}", "not syslog", f"ng raw {i}",
                            received=(now - timedelta(minutes=10 - i)).isoformat()) for i in range(5)])
    letters.put([DeadLetter(NG, "aws.cloudtrail", "http #1", "not JSON", "ng trail raw", received=now.isoformat())])
    letters.put([DeadLetter(RS, "syslog", "udp 198.51.100.3 #1", "riverside reason", "riverside secret raw",
                            received=now.isoformat())])
    return {"ng": ng, "rs": rs}


def test_sources_carry_their_data_health(soc: SocApi, fed: dict[str, dict[str, Any]]) -> None:
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    listed = soc.client.get("/api/v1/sources", headers=viewer).json()
    assert [s["name"] for s in listed] == ["dmz"]
    health = listed[0]["health"]
    assert health["events_last_hour"] == 40 and health["dead_letters_last_hour"] == 10
    assert health["parse_error_rate"] == pytest.approx(0.2)
    assert health["last_event_received"] is not None
    received = datetime.fromisoformat(health["last_event_received"])
    assert health["events_per_minute"] in just_recorded(40, at=received)
    assert health["last_dead_letter"]["reason"] == "not an RFC 3164 or 5424 message"

    one = soc.client.get(f"/api/v1/sources/{fed['ng']['id']}/health", headers=viewer)
    assert one.status_code == 200 and {**one.json(), "events_per_minute": None} == {**health, "events_per_minute": None}
    assert one.json()["events_per_minute"] in just_recorded(40, at=received)


def test_another_tenants_source_health_is_not_found(soc: SocApi, fed: dict[str, dict[str, Any]]) -> None:
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    theirs = soc.client.get(f"/api/v1/sources/{fed['rs']['id']}/health", headers=viewer)
    assert theirs.status_code == 404 and "riverside" not in theirs.text
    assert soc.client.get("/api/v1/sources/999999/health", headers=viewer).status_code == 404
    assert soc.client.get(f"/api/v1/sources/{fed['rs']['id']}/health", headers=soc.analyst).status_code == 200


def test_a_health_line_recorded_under_another_tenant_never_shows(soc: SocApi, fed: dict[str, dict[str, Any]],
                                                                 settings: Settings) -> None:
    # An intake that filed riverside's batch under northgate's source id must not show it to northgate.
    HealthStore(settings.health_dir).record(source_id=fed["ng"]["id"], tenant=RS, events=1000, dead=0)
    health = soc.client.get(f"/api/v1/sources/{fed['ng']['id']}/health", headers=soc.analyst).json()
    assert health["events_last_hour"] == 40


def test_a_tenant_lists_only_its_own_dead_letters_newest_first(soc: SocApi, fed: dict[str, dict[str, Any]]) -> None:
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)
    letters = soc.client.get("/api/v1/deadletters", headers=viewer).json()
    assert {letter["tenant"] for letter in letters} == {NG} and len(letters) == 6
    assert [letter["received"] for letter in letters] == sorted((letter["received"] for letter in letters),
                                                                reverse=True)
    syslog = soc.client.get("/api/v1/deadletters", params={"source": "syslog", "limit": 2}, headers=viewer).json()
    assert [letter["origin"] for letter in syslog] == ["udp 192.0.2.7 #4", "udp 192.0.2.7 #3"]
    crossing = soc.client.get("/api/v1/deadletters", params={"tenant": RS}, headers=viewer)
    assert crossing.status_code == 200 and crossing.json() == []
    assert "riverside" not in soc.client.get("/api/v1/deadletters", headers=viewer).text


def test_city_roles_see_every_tenants_dead_letters_and_may_narrow_them(soc: SocApi,
                                                                        fed: dict[str, dict[str, Any]]) -> None:
    everything = soc.client.get("/api/v1/deadletters", headers=soc.analyst).json()
    assert {letter["tenant"] for letter in everything} == {NG, RS} and len(everything) == 7
    only = soc.client.get("/api/v1/deadletters", params={"tenant": RS}, headers=soc.analyst).json()
    assert [letter["raw"] for letter in only] == ["riverside secret raw"]


@pytest.mark.parametrize("role", [Role.RULE_AUTHOR, Role.SERVICE])
def test_dead_letters_hold_raw_records_so_only_soc_and_tenant_roles_read_them(soc: SocApi, role: Role,
                                                                              fed: dict[str, dict[str, Any]]) -> None:
    assert soc.client.get("/api/v1/deadletters", headers=soc.headers(role)).status_code == 403


def test_before_the_intake_ran_health_is_empty_and_there_are_no_dead_letters(soc: SocApi) -> None:
    soc.add_tenant(NG)
    source = add(soc, NG, "dmz", "192.0.2.0/24")
    health = soc.client.get(f"/api/v1/sources/{source['id']}/health", headers=soc.analyst).json()
    assert health["last_event_received"] is None and health["events_per_minute"] == [0] * 60
    assert health["parse_error_rate"] is None
    assert soc.client.get("/api/v1/deadletters", headers=soc.analyst).json() == []
