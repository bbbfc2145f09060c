"""Campaigns on every indicator kind: typed and normalised matching, per-kind thresholds, ignored values, and
what a member may read of each kind's campaign. The shipped campaign rules, alerts posted as the correlator
posts them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from case_api.auth.models import Role
from case_api.db import downgrade_database, upgrade_database
from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
MEMBERS = ("northgate-hospital", "riverside-school", "riverside-council", "elm-street-gp")
NOTICE_KEYS = {"id", "title", "indicator", "case_ids", "other_organisations", "summary"}
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

# kind -> (each member's sighting: its alert's entities, spelt as that member's logs spell it), the
# normalised value, how many members form a campaign under the shipped rules
SIGHTINGS: dict[str, tuple[list[dict[str, list[str]]], str, int]] = {
    "ip": ([{"source.ip": ["2001:0db8:0000::0001"]}, {"source.ip": ["2001:db8::1"]}], "2001:db8::1", 2),
    "user_agent": ([{"user_agent.original": ["python-requests/2.32.3"]}] * 3, "python-requests/2.32.3", 3),
    "domain": ([{"url.domain": ["Login.Council-Portal.example."]},
                {"dns.question.name": ["login.council-portal.example"]}], "login.council-portal.example", 2),
    "hash": ([{"file.hash.sha256": [SHA256.upper()]}, {"process.hash.sha256": [SHA256]}], SHA256, 2),
    "user_principal": ([{"user.email": ["Treasurer@City-Finance.example"]},
                        {"user.name": ["treasurer@city-finance.example"]}], "treasurer@city-finance.example",
                       2),
    "asn": ([{"source.as.number": ["64500"]}, {"source.as.number": ["AS64500"]}, {"source.as.number": ["64500"]}],
            "64500", 3),
}


def _sighting(make_alert: MakeAlert, tenant: str, entities: dict[str, list[str]], *, minutes: int = 0,
              level: str = "medium") -> dict[str, Any]:
    """A medium alert (its risk opens a case; below the same-rule campaign's level) naming the indicator and
    the member's own host and user, which no other member may ever read."""
    own = {"host.name": [f"{tenant}-web"], "user.name": [f"clerk-{tenant}"]}
    return make_alert(tenant, level=level, minutes=minutes, entities=own | entities)


def _alerts(make_alert: MakeAlert, sightings: list[dict[str, list[str]]], *, every: int = 10) -> list[dict[str, Any]]:
    """The n-th sighting at the n-th member, ``every`` minutes apart."""
    return [_sighting(make_alert, MEMBERS[n], entities, minutes=every * n) for n, entities in enumerate(sightings)]


def _get(soc: SocApi, path: str, headers: dict[str, str], status: int = 200, **params: Any) -> Any:
    response = soc.client.get(path, headers=headers, params=params)
    assert response.status_code == status, response.text
    return response.json()


def _form(soc: SocApi, make_alert: MakeAlert, kind: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The kind's sightings at as many members as its rule needs; the campaign and each member's case."""
    for tenant in MEMBERS:
        soc.add_tenant(tenant)
    soc.ingest(*_alerts(make_alert, SIGHTINGS[kind][0]))
    cases = {c["tenant_id"]: c["id"] for c in _get(soc, "/api/v1/cases", soc.analyst)}
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    return campaign, cases


@pytest.mark.parametrize("kind", sorted(SIGHTINGS))
def test_each_kind_forms_a_campaign_at_its_member_count_and_not_below(
    soc: SocApi, make_alert: MakeAlert, kind: str
) -> None:
    for tenant in MEMBERS:
        soc.add_tenant(tenant)
    sightings, value, needed = SIGHTINGS[kind]
    members = MEMBERS[:needed]
    assert len(sightings) == needed
    alerts = _alerts(make_alert, sightings)
    soc.ingest(*alerts[:-1])
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []  # one member short
    soc.ingest(alerts[-1])
    cases = {c["tenant_id"]: c["id"] for c in _get(soc, "/api/v1/cases", soc.analyst)}
    assert sorted(cases) == sorted(members)
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert campaign["indicator"] == {"kind": kind, "value": value}
    assert campaign["tenants"] == sorted(members)
    assert campaign["case_ids"] == sorted(cases.values())
    assert campaign["rule_id"] == ("2b8d6e14-5f0a-4c39-b7e2-91a4c3d8f605" if kind == "asn"
                                   else "6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90")


@pytest.mark.parametrize(
    "spellings",
    [
        # one string, two kinds: a user agent is not a domain, a domain field holding an address is no domain
        [{"user_agent.original": ["evil.example.com"]}, {"url.domain": ["evil.example.com"]}],
        [{"url.domain": ["203.0.113.9"]}, {"source.ip": ["203.0.113.9"]}],
        [{"user.name": ["admin"]}, {"user.email": ["admin"]}],  # no principal without a domain
        [{"file.hash.sha256": ["not-a-hash"]}, {"file.hash.sha256": ["not-a-hash"]}],
        [{"source.as.number": ["64500"]}, {"source.ip": ["64500"]}],
        # configured as noise: private addresses, browsers (at every member), the identity provider
        [{"source.ip": ["10.1.2.3"]}, {"source.ip": ["10.1.2.3"]}],
        [{"user_agent.original": ["Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"]}] * 4,
        [{"destination.domain": ["login.microsoftonline.com"]}, {"dns.question.name": ["login.microsoftonline.com"]}],
    ],
    ids=["agent-vs-domain", "address-in-domain-field", "bare-user-name", "not-a-hash", "asn-vs-ip", "private-ip",
         "browser-agent", "identity-provider"],
)
def test_values_of_different_kinds_or_ignored_values_form_no_campaign(
    soc: SocApi, make_alert: MakeAlert, spellings: list[dict[str, list[str]]]
) -> None:
    for tenant in MEMBERS:
        soc.add_tenant(tenant)
    result = soc.ingest(*_alerts(make_alert, spellings, every=1))
    assert len(result["cases"]) == len(spellings)
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []


def test_indicator_only_entities_do_not_group_a_members_alerts_into_one_case(
    soc: SocApi, make_alert: MakeAlert
) -> None:
    """Two of one member's alerts sharing only a user agent, a domain and a hash are two cases; sharing a user
    they are one (incident grouping as before: `user.name`, `source.ip` and the group key)."""
    tenant = MEMBERS[0]
    soc.add_tenant(tenant)
    shared = {"user_agent.original": ["curl/8.5.0"], "url.domain": ["evil.example"], "file.hash.sha256": [SHA256]}
    first = make_alert(tenant, level="medium", entities={"user.name": ["alice"]} | shared, group_key="user.name=alice")
    second = make_alert(tenant, level="medium", minutes=5, entities={"user.name": ["bob"]} | shared,
                        group_key="user.name=bob")
    [alice_case] = soc.ingest(first)["cases"]
    [bob_case] = soc.ingest(second)["cases"]
    assert bob_case != alice_case
    third = make_alert(tenant, level="medium", minutes=6, entities={"user.name": ["bob"]}, group_key="user.name=bob")
    assert soc.ingest(third)["cases"] == [bob_case]


@pytest.mark.parametrize("kind", sorted(SIGHTINGS))
@pytest.mark.parametrize("role", [Role.TENANT_RESPONDER, Role.TENANT_VIEWER])
def test_a_member_reads_of_any_kinds_campaign_only_its_case_and_a_count(
    soc: SocApi, make_alert: MakeAlert, kind: str, role: Role
) -> None:
    campaign, cases = _form(soc, make_alert, kind)
    member, *others = campaign["tenants"]
    headers = soc.headers(role, tenant=member)
    [notice] = _get(soc, "/api/v1/campaigns", headers)
    assert set(notice) == NOTICE_KEYS
    assert notice["indicator"] == campaign["indicator"]
    assert notice["case_ids"] == [cases[member]]
    assert notice["other_organisations"] == len(others)
    plural = "" if len(others) == 1 else "s"
    assert notice["summary"] == f"also seen at {len(others)} other member organisation{plural}"
    assert _get(soc, f"/api/v1/campaigns/{notice['id']}", headers) == notice
    own_case = _get(soc, f"/api/v1/cases/{cases[member]}", headers)
    assert own_case["campaigns"] == [notice]
    readable = json.dumps([
        _get(soc, "/api/v1/campaigns", headers), _get(soc, f"/api/v1/campaigns/{notice['id']}", headers), own_case,
        _get(soc, "/api/v1/cases", headers), _get(soc, "/api/v1/alerts", headers),
        _get(soc, f"/api/v1/cases/{cases[member]}/alerts", headers),
    ])
    for tenant in [*others, *(t for t in MEMBERS if t not in campaign["tenants"])]:
        assert tenant not in readable  # no other member's name, host or user (all spelt with the tenant id)
    for tenant in others:
        case_id = cases[tenant]
        assert _get(soc, f"/api/v1/cases/{case_id}", headers, status=404) == {"detail": f"case {case_id} not found"}
        _get(soc, f"/api/v1/cases/{case_id}/alerts", headers, status=404)
        assert _get(soc, "/api/v1/alerts", headers, case_id=case_id) == []
        assert _get(soc, "/api/v1/alerts", headers, tenant=tenant) == []
        assert _get(soc, "/api/v1/cases", headers, tenant=tenant) == []
    # a member outside the campaign sees nothing of it
    outsider = soc.headers(role, tenant=MEMBERS[-1])
    assert _get(soc, "/api/v1/campaigns", outsider) == []
    assert _get(soc, f"/api/v1/campaigns/{campaign['id']}", outsider, status=404) == {
        "detail": f"campaign {campaign['id']} not found"}


@pytest.mark.parametrize("kind", sorted(SIGHTINGS))
def test_city_analysts_see_each_kinds_campaign_whole_on_its_cases(
    soc: SocApi, make_alert: MakeAlert, kind: str
) -> None:
    campaign, cases = _form(soc, make_alert, kind)
    assert set(campaign) == {"id", "rule_id", "title", "indicator", "tenants", "case_ids", "first_seen", "last_seen"}
    for tenant in campaign["tenants"]:
        assert soc.case(cases[tenant])["campaigns"] == [campaign]


def test_the_typed_indicator_migration_carries_campaigns_and_sightings_over(
    soc: SocApi, make_alert: MakeAlert, db_engine: Engine
) -> None:
    """Back to 0011 (campaigns named by field, no typed rows) and up again: the campaign reads as a kind, and
    a new member's sighting finds the earlier members' through the backfilled rows."""
    for tenant in MEMBERS:
        soc.add_tenant(tenant)
    sightings = [{"source.ip": ["2001:db8::1"], "url.domain": ["Evil.Example"]},
                 {"source.ip": ["2001:0DB8::1"], "file.hash.md5": ["D41D8CD98F00B204E9800998ECF8427E"]},
                 {"source.ip": ["2001:db8::1"]}]
    soc.ingest(*_alerts(make_alert, sightings[:2], every=1))
    [before] = _get(soc, "/api/v1/campaigns", soc.analyst)
    downgrade_database(db_engine, "0011")
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT indicator_field FROM campaigns")).scalars().all() == ["source.ip"]
        typed = "SELECT count(*) FROM alert_entities WHERE field LIKE 'indicator:%'"
        assert connection.execute(text(typed)).scalar() == 0
    upgrade_database(db_engine)
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == [before]
    with db_engine.connect() as connection:
        rows = connection.execute(text("SELECT field, value FROM alert_entities WHERE field LIKE 'indicator:%'"))
        assert sorted(rows.tuples()) == [  # the 2001:0DB8::1 spelling normalised as well
            ("indicator:domain", "evil.example"), ("indicator:hash", "d41d8cd98f00b204e9800998ecf8427e"),
            ("indicator:ip", "2001:db8::1"), ("indicator:ip", "2001:db8::1")]
    soc.ingest(_sighting(make_alert, MEMBERS[2], sightings[2], minutes=5))
    [after] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert (after["id"], after["indicator"]) == (before["id"], {"kind": "ip", "value": "2001:db8::1"})
    assert after["tenants"] == sorted(MEMBERS[:3])
