"""Alert ingest: the correlator's contract, idempotency and tenant checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, select

from case_api.alerts.models import Alert, AlertIn
from case_api.alerts.service import derive_group_key
from case_api.auth.models import Role

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"


def _alert_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Alert)).scalar_one())


def test_posting_the_same_batch_twice_stores_it_once(soc: SocApi, make_alert: MakeAlert, clean_db: Engine) -> None:
    soc.add_tenant(NG)
    batch = [make_alert(NG, user="christophe"), make_alert(NG, user="dana")]
    first = soc.ingest(*batch)
    assert first["created"] == 2 and first["duplicates"] == 0
    assert len(first["cases"]) == 2

    second = soc.ingest(*batch)
    assert second == {"created": 0, "duplicates": 2, "cases": [], "pending": 0, "rejected": []}
    assert _alert_rows(clean_db) == 2
    case = soc.case(first["cases"][0])
    assert case["alert_count"] == 1


def test_duplicate_inside_one_batch_counts_once(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    alert = make_alert(NG)
    result = soc.ingest(alert, alert)
    assert (result["created"], result["duplicates"]) == (1, 1)


def test_alert_of_an_unknown_tenant_is_rejected_alone(soc: SocApi, make_alert: MakeAlert, clean_db: Engine) -> None:
    soc.add_tenant(NG)
    ghost = make_alert("ghost-charity")
    response = soc.post_alerts(make_alert(NG), ghost)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["created"] == 1
    [rejected] = answer["rejected"]
    assert (rejected["index"], rejected["id"], rejected["tenant_id"]) == (1, ghost["id"], "ghost-charity")
    assert "unknown tenant 'ghost-charity'" in rejected["reason"]
    assert _alert_rows(clean_db) == 1

    only_ghosts = soc.post_alerts(make_alert("ghost-charity"))
    assert only_ghosts.status_code == 422
    assert "ghost-charity" in only_ghosts.json()["detail"]
    assert _alert_rows(clean_db) == 1


def test_malformed_alert_is_422_naming_the_field(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    alert = make_alert(NG)
    del alert["rule"]["title"]
    response = soc.post_alerts(alert)
    assert response.status_code == 422
    assert "rule.title" in response.json()["detail"]

    bad_level = make_alert(NG, level="urgent")
    assert soc.post_alerts(bad_level).status_code == 422


def test_extra_keys_are_kept_in_the_document(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    alert = make_alert(NG, threat={"indicator": {"ip": "86.245.153.234"}})
    alert["rule"]["author"] = "city-soc"
    soc.ingest(alert)
    stored = soc.client.get("/api/v1/alerts", headers=soc.analyst).json()
    assert len(stored) == 1
    document = stored[0]["document"]
    assert document["threat"] == {"indicator": {"ip": "86.245.153.234"}}
    assert document["rule"]["author"] == "city-soc"
    assert stored[0]["rule_tags"] == ["attack.t1562.008"]
    assert stored[0]["timestamp"] == "2024-07-31T13:06:24Z"


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.SERVICE, 200),
        (Role.ADMIN, 200),
        (Role.SOC_ANALYST, 403),
        (Role.RULE_AUTHOR, 403),
        (Role.TENANT_RESPONDER, 403),
        (Role.TENANT_VIEWER, 403),
    ],
)
def test_who_may_post_alerts(soc: SocApi, make_alert: MakeAlert, role: Role, status: int) -> None:
    soc.add_tenant(NG)
    headers = soc.headers(role, tenant=NG if role.is_tenant_bound else None)
    assert soc.post_alerts(make_alert(NG), headers=headers).status_code == status


def test_alert_list_is_scoped_to_the_callers_tenant(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    soc.ingest(make_alert(NG), make_alert(RS), make_alert(RS, user="eve"))
    viewer = soc.headers(Role.TENANT_VIEWER, tenant=NG)

    own = soc.client.get("/api/v1/alerts", headers=viewer).json()
    assert {a["tenant_id"] for a in own} == {NG}
    crossing = soc.client.get("/api/v1/alerts", params={"tenant": RS}, headers=viewer).json()
    assert crossing == []

    rs_case = soc.client.get("/api/v1/cases", params={"tenant": RS}, headers=soc.analyst).json()[0]
    by_case = soc.client.get("/api/v1/alerts", params={"case_id": rs_case["id"]}, headers=viewer).json()
    assert by_case == []

    everything = soc.client.get("/api/v1/alerts", headers=soc.analyst).json()
    assert len(everything) == 3
    assert len(soc.client.get("/api/v1/alerts", params={"limit": 1}, headers=soc.analyst).json()) == 1


@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        ({"user.name": ["christophe"], "source.ip": ["86.245.153.234"]}, "user.name=christophe"),
        ({"source.ip": ["86.245.153.234"], "host.name": ["web-1"]}, "source.ip=86.245.153.234"),
        ({"host.name": "web-1", "cloud.account.id": ["1434"]}, "host.name=web-1"),
        ({"cloud.account.id": ["143434273843"]}, "cloud.account.id=143434273843"),
        ({"user.name": [], "process.name": ["x"]}, "rule.id=rule-1"),
        ({}, "rule.id=rule-1"),
    ],
)
def test_derive_group_key_falls_back_in_order(entities: dict[str, Any], expected: str) -> None:
    alert = AlertIn.model_validate(
        {
            "id": "a",
            "@timestamp": "2024-07-31T13:06:24Z",
            "organization": {"id": NG},
            "rule": {"id": "rule-1", "title": "t"},
            "entities": entities,
        }
    )
    assert derive_group_key(alert) == expected


def test_derive_group_key_prefers_the_correlators_key() -> None:
    alert = AlertIn.model_validate(
        {
            "id": "a",
            "@timestamp": "2024-07-31T13:06:24Z",
            "organization": {"id": NG},
            "rule": {"id": "rule-1", "title": "t"},
            "entities": {"user.name": ["bob"]},
            "group_key": "campaign=42",
        }
    )
    assert derive_group_key(alert) == "campaign=42"
