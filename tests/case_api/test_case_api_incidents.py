"""Incidents: alerts grouped by shared entities within a window, entity risk, last event time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI

from case_api.app import create_app
from case_api.incidents.service import best_window
from case_api.settings import Settings
from tests.case_api.conftest import BASE_TIME, SocApi, http_client

if TYPE_CHECKING:
    from pathlib import Path

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"
IP = "203.0.113.50"


def _cases(soc: SocApi, **params: Any) -> list[dict[str, Any]]:
    response = soc.client.get("/api/v1/cases", params=params, headers=soc.analyst)
    assert response.status_code == 200, response.text
    cases: list[dict[str, Any]] = response.json()
    return cases


def _alerts(soc: SocApi) -> list[dict[str, Any]]:
    response = soc.client.get("/api/v1/alerts", headers=soc.analyst)
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def _ssh(tenant: str, make_alert: MakeAlert, *, user: str, ip: str = IP, **kwargs: Any) -> dict[str, Any]:
    return make_alert(tenant, entities={"user.name": [user], "source.ip": [ip], "host.name": ["bastion"]}, **kwargs)


# --- grouping by shared entities -----------------------------------------------------------------


def test_alerts_sharing_a_source_ip_join_one_case_across_users(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    result = soc.ingest(
        _ssh(NG, make_alert, user="root", minutes=0),
        _ssh(NG, make_alert, user="admin", minutes=30),
        _ssh(NG, make_alert, user="deploy", ip="198.51.100.9", minutes=40),  # shares nothing with them
    )
    assert len(result["cases"]) == 2
    by_size = sorted(_cases(soc), key=lambda c: c["alert_count"])
    assert [c["alert_count"] for c in by_size] == [1, 2]
    together = soc.case(by_size[1]["id"])
    assert {a["entities"]["user.name"][0] for a in together["alerts"]} == {"root", "admin"}


def test_a_shared_host_alone_does_not_group_by_default(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    result = soc.ingest(
        _ssh(NG, make_alert, user="a", ip="198.51.100.1"), _ssh(NG, make_alert, user="b", ip="198.51.100.2")
    )
    assert len(result["cases"]) == 2


def test_alerts_further_apart_than_the_default_window_open_separate_cases(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    first = soc.ingest(make_alert(NG, user="bob", minutes=0))["cases"]
    same = soc.ingest(make_alert(NG, user="bob", minutes=23 * 60))["cases"]
    later = soc.ingest(make_alert(NG, user="bob", minutes=23 * 60 + 25 * 60))["cases"]
    assert first == same
    assert later != first
    # Both cases are open at once: one group may have several open cases, one per burst.
    assert [c["status"] for c in _cases(soc)] == ["new", "new"]


def test_the_rules_window_overrides_the_default(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    two_hours = {"group_by": ["source.ip"], "window_seconds": 7200}
    result = soc.ingest(
        _ssh(NG, make_alert, user="a", minutes=0, incident=two_hours),
        _ssh(NG, make_alert, user="b", minutes=90, incident=two_hours),
        _ssh(NG, make_alert, user="c", minutes=90 + 150, incident=two_hours),
    )
    assert [c["alert_count"] for c in sorted(_cases(soc), key=lambda c: c["id"])] == [2, 1]
    assert len(result["cases"]) == 2


def test_the_rules_group_by_overrides_the_default(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    by_host = {"group_by": ["host.name"]}
    soc.ingest(
        _ssh(NG, make_alert, user="a", ip="198.51.100.1", incident=by_host),
        _ssh(NG, make_alert, user="b", ip="198.51.100.2", incident=by_host),
    )
    [case] = _cases(soc)
    assert case["alert_count"] == 2


def test_grouping_never_crosses_tenants(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    soc.ingest(_ssh(NG, make_alert, user="root"), _ssh(RS, make_alert, user="root"))
    cases = _cases(soc)
    assert sorted(c["tenant_id"] for c in cases) == [NG, RS]
    for case in cases:
        assert {a["tenant_id"] for a in soc.case(case["id"])["alerts"]} == {case["tenant_id"]}


# --- entity risk ---------------------------------------------------------------------------------


def test_a_low_alert_is_held_until_its_entity_gathers_enough_risk(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    first = soc.ingest(_ssh(NG, make_alert, user="root", level="low", minutes=0))
    assert (first["created"], first["pending"], first["cases"]) == (1, 1, [])
    assert _cases(soc) == []
    assert [a["case_id"] for a in _alerts(soc)] == [None]

    # Another user, the same source: the source's risk reaches the threshold (25 + 25 >= 50).
    second = soc.ingest(_ssh(NG, make_alert, user="oracle", level="low", minutes=60))
    assert second["pending"] == 0
    [case_id] = second["cases"]
    case = soc.case(case_id)
    assert case["alert_count"] == 2
    assert case["first_seen"].startswith(BASE_TIME.strftime("%Y-%m-%dT%H:%M"))
    created = case["events"][0]
    assert created["action"] == "created"
    assert created["detail"]["risk"] == {"entity": f"source.ip={IP}", "score": 50, "threshold": 50}


def test_risk_outside_the_window_does_not_add_up(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.ingest(_ssh(NG, make_alert, user="root", level="low", minutes=0))
    result = soc.ingest(_ssh(NG, make_alert, user="root", level="low", minutes=25 * 60))
    assert result["pending"] == 1
    assert _cases(soc) == []


def test_risk_adds_up_whatever_order_alerts_arrive_in(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    assert soc.ingest(_ssh(NG, make_alert, user="root", level="low", minutes=600))["pending"] == 1
    late = soc.ingest(_ssh(NG, make_alert, user="root", level="low", minutes=0))  # an older alert, delivered late
    assert late["pending"] == 0
    assert [c["alert_count"] for c in _cases(soc)] == [2]


def test_risk_is_counted_per_tenant(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    result = soc.ingest(_ssh(NG, make_alert, user="root", level="low"), _ssh(RS, make_alert, user="root", level="low"))
    assert result["pending"] == 2
    assert _cases(soc) == []


def test_a_held_alert_joins_a_case_its_entity_opens_later(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.ingest(_ssh(NG, make_alert, user="root", level="informational", minutes=0))
    [case_id] = soc.ingest(_ssh(NG, make_alert, user="root", level="high", minutes=5))["cases"]
    assert soc.case(case_id)["alert_count"] == 2
    assert all(a["case_id"] == case_id for a in _alerts(soc))


@pytest.fixture
def strict_soc(tmp_path: Path, db_url: str, clean_db: Any) -> Iterator[SocApi]:
    """The API with a risk threshold of 100 and grouping by user only."""
    settings = Settings(home=tmp_path / "home", database_url=db_url, risk_threshold=100, case_group_by=("user.name",))
    app: FastAPI = create_app(settings)
    with http_client(app) as http:
        yield SocApi(http, app)
    app.state.engine.dispose()


def test_threshold_and_default_grouping_are_configurable(strict_soc: SocApi, make_alert: MakeAlert) -> None:
    strict_soc.add_tenant(NG)
    assert strict_soc.ingest(_ssh(NG, make_alert, user="a", level="medium"))["pending"] == 1
    # user "b" shares only the source with "a": by user only, no shared entity and no risk to add.
    assert strict_soc.ingest(_ssh(NG, make_alert, user="b", level="high", minutes=1))["pending"] == 1
    assert strict_soc.ingest(_ssh(NG, make_alert, user="a", level="medium", minutes=2))["pending"] == 0


def test_best_window_counts_only_windows_that_reach_the_alert() -> None:
    hour = timedelta(hours=1)
    points = [(BASE_TIME, 25), (BASE_TIME + hour, 25), (BASE_TIME + 5 * hour, 25)]
    assert best_window(points, window=2 * hour, ending_from=BASE_TIME) == 50
    assert best_window(points, window=2 * hour, ending_from=BASE_TIME + 5 * hour) == 25
    assert best_window(points, window=6 * hour, ending_from=BASE_TIME) == 75


# --- last event time -----------------------------------------------------------------------------


def test_case_last_seen_is_the_last_events_time_not_the_windows_start(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    start = BASE_TIME
    end = start + timedelta(minutes=4, seconds=30)
    burst = _ssh(NG, make_alert, user="root", level="high",
                 event={"ids": ["e1", "e2"], "dataset": "system.auth", "end": end.isoformat()})
    [case_id] = soc.ingest(burst)["cases"]
    case = soc.case(case_id)
    assert case["first_seen"] == start.isoformat().replace("+00:00", "Z")
    assert case["last_seen"] == end.isoformat().replace("+00:00", "Z")
    assert case["alerts"][0]["last_seen"] == case["last_seen"]


def test_an_alert_ending_before_it_starts_is_refused(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    bad = make_alert(NG, event={"ids": ["e"], "end": (BASE_TIME - timedelta(minutes=1)).isoformat()})
    response = soc.post_alerts(bad)
    assert response.status_code == 422
    assert "event.end is before @timestamp" in response.text


def test_an_unknown_incident_key_is_refused_with_its_name(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    response = soc.post_alerts(make_alert(NG, incident={"group_by": ["source.ip"], "windw": 60}))
    assert response.status_code == 422
    assert "windw" in response.text


@pytest.mark.parametrize(("text", "expected"), [("2h", 7200), ("7200", 7200), ("PT3H", 10800), ("1d", 86400)])
def test_the_default_window_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: int
) -> None:
    monkeypatch.setenv("SOC_CASE_WINDOW", text)
    monkeypatch.setenv("SOC_CASE_GROUP_BY", '["user.name", "host.name"]')
    settings = Settings()
    assert settings.case_window == timedelta(seconds=expected)
    assert settings.case_group_by == ("user.name", "host.name")
