"""City-wide campaigns: forming them, and what each role may read of one through every endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.campaigns.disclosure import disclose
from case_api.campaigns.indicators import INDICATOR_KINDS
from case_api.campaigns.models import Campaign, CampaignCase, CampaignNotice, CampaignOut
from case_api.campaigns.rules import DEFAULT_CAMPAIGN_RULES, CampaignRuleError, load_campaign_rules
from case_api.settings import Settings
from tests.case_api.conftest import SocApi, http_client

MakeAlert = Callable[..., dict[str, Any]]
ATTACKER = "203.0.113.50"
HOSPITAL, SCHOOL, COUNCIL, GP = "northgate-hospital", "riverside-school", "riverside-council", "elm-street-gp"
CITY_ROLES = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST)
MEMBER_ROLES = (Role.TENANT_RESPONDER, Role.TENANT_VIEWER)
NOTICE_KEYS = {"id", "title", "indicator", "case_ids", "other_organisations", "summary"}


def _attack(tenant: str, make_alert: MakeAlert, *, ip: str = ATTACKER, user: str = "root", minutes: int = 0,
            level: str = "high", **extra: Any) -> dict[str, Any]:
    return make_alert(tenant, level=level, minutes=minutes, rule_title="SSH Login As Root Accepted",
                      entities={"source.ip": [ip], "user.name": [f"{user}-{tenant}"], "host.name": [f"{tenant}-web"]},
                      **extra)


def _get(soc: SocApi, path: str, headers: dict[str, str], status: int = 200, **params: Any) -> Any:
    response = soc.client.get(path, headers=headers, params=params)
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def city(soc: SocApi, make_alert: MakeAlert) -> dict[str, Any]:
    """203.0.113.50 attacks three members; a fourth member has a case of its own, in no campaign."""
    for tenant in (HOSPITAL, SCHOOL, COUNCIL, GP):
        soc.add_tenant(tenant)
    other_rule = _attack(GP, make_alert, ip="198.51.100.7")
    other_rule["rule"] |= {"id": "b7d2f0a4-7f3c-4c55-9b0e-55d1f2a7c6e1", "title": "Console Login Without MFA"}
    result = soc.ingest(*(_attack(t, make_alert, minutes=n * 40) for n, t in enumerate((HOSPITAL, SCHOOL, COUNCIL))),
                        other_rule)
    cases = {c["tenant_id"]: c["id"] for c in _get(soc, "/api/v1/cases", soc.analyst)}
    assert sorted(result["cases"]) == sorted(cases.values())
    return cases


def test_one_attacker_at_three_members_forms_one_campaign_linking_their_three_cases(
    soc: SocApi, city: dict[str, int]
) -> None:
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert campaign["indicator"] == {"kind": "ip", "value": ATTACKER}
    assert campaign["tenants"] == sorted([HOSPITAL, SCHOOL, COUNCIL])
    assert campaign["case_ids"] == sorted(city[t] for t in (HOSPITAL, SCHOOL, COUNCIL))
    assert campaign["title"] == "Same Attacker Indicator At Several Member Organisations"
    assert _get(soc, f"/api/v1/campaigns/{campaign['id']}", soc.analyst) == campaign
    # Each member's case carries the campaign; the city sees it whole there too.
    assert soc.case(city[SCHOOL])["campaigns"] == [campaign]
    assert soc.case(city[GP])["campaigns"] == []


def test_posting_again_and_more_sightings_extend_the_same_campaign(
    soc: SocApi, make_alert: MakeAlert, city: dict[str, int]
) -> None:
    [before] = _get(soc, "/api/v1/campaigns", soc.analyst)
    soc.ingest(_attack(GP, make_alert, user="admin", minutes=200))  # the GP practice, later, same address
    [after] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert after["id"] == before["id"]
    assert after["tenants"] == sorted([HOSPITAL, SCHOOL, COUNCIL, GP])
    assert city[GP] not in after["case_ids"]  # the GP's new alert shares no entity with its first case
    assert len(after["case_ids"]) == 4


def test_one_member_alone_is_no_campaign(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(HOSPITAL)
    soc.ingest(_attack(HOSPITAL, make_alert), _attack(HOSPITAL, make_alert, user="admin", minutes=5))
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []


def test_sightings_further_apart_than_the_window_form_no_campaign(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(HOSPITAL)
    soc.add_tenant(SCHOOL)
    soc.ingest(_attack(HOSPITAL, make_alert, minutes=0), _attack(SCHOOL, make_alert, minutes=25 * 60))
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []


def test_held_alerts_count_for_no_campaign_until_they_are_in_a_case(soc: SocApi, make_alert: MakeAlert) -> None:
    soc.add_tenant(HOSPITAL)
    soc.add_tenant(SCHOOL)
    result = soc.ingest(_attack(HOSPITAL, make_alert, level="low"), _attack(SCHOOL, make_alert, level="high"))
    assert result["pending"] == 1
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []
    soc.ingest(_attack(HOSPITAL, make_alert, level="low", user="admin", minutes=10))  # the hospital's case opens
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert campaign["tenants"] == [HOSPITAL, SCHOOL]


def test_the_same_high_rule_at_three_members_is_a_campaign_of_its_own(soc: SocApi, make_alert: MakeAlert) -> None:
    for tenant in (HOSPITAL, SCHOOL, COUNCIL):
        soc.add_tenant(tenant)
    soc.ingest(*(_attack(t, make_alert, ip=f"198.51.100.{n}", minutes=n * 10)
                 for n, t in enumerate((HOSPITAL, SCHOOL, COUNCIL))))
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert campaign["indicator"] == {"kind": "rule", "value": "4db60cc0-36fb-42b7-9b58-a5b53019fb74"}
    assert campaign["title"] == "Same Detection At Several Member Organisations"
    assert len(campaign["tenants"]) == 3


# --- disclosure: every endpoint, every role --------------------------------------------------------


@pytest.mark.parametrize("role", CITY_ROLES)
def test_city_roles_see_the_whole_campaign(soc: SocApi, city: dict[str, int], role: Role) -> None:
    headers = soc.headers(role)
    [campaign] = _get(soc, "/api/v1/campaigns", headers)
    assert campaign["tenants"] == sorted([HOSPITAL, SCHOOL, COUNCIL])
    assert _get(soc, f"/api/v1/campaigns/{campaign['id']}", headers)["case_ids"] == campaign["case_ids"]


@pytest.mark.parametrize("role", MEMBER_ROLES)
@pytest.mark.parametrize("member", [HOSPITAL, SCHOOL, COUNCIL])
def test_a_member_sees_only_its_own_case_and_a_count_of_the_others(
    soc: SocApi, city: dict[str, int], role: Role, member: str
) -> None:
    headers = soc.headers(role, tenant=member)
    others = {t: case for t, case in city.items() if t != member}
    [notice] = _get(soc, "/api/v1/campaigns", headers)
    assert set(notice) == NOTICE_KEYS
    assert notice["case_ids"] == [city[member]]
    assert notice["other_organisations"] == 2
    assert notice["summary"] == "also seen at 2 other member organisations"
    assert notice["indicator"] == {"kind": "ip", "value": ATTACKER}
    assert _get(soc, f"/api/v1/campaigns/{notice['id']}", headers) == notice

    own_case = _get(soc, f"/api/v1/cases/{city[member]}", headers)
    assert own_case["campaigns"] == [notice]
    readable = [
        json.dumps(_get(soc, "/api/v1/campaigns", headers)),
        json.dumps(_get(soc, f"/api/v1/campaigns/{notice['id']}", headers)),
        json.dumps(own_case),
        json.dumps(_get(soc, "/api/v1/cases", headers)),
        json.dumps(_get(soc, "/api/v1/alerts", headers)),
    ]
    for text in readable:
        for tenant in others:  # no other member's name, host or user anywhere
            assert tenant not in text
    # Another member's part: its cases, its alerts, by id or by filter, read like things that do not exist.
    for tenant, case_id in others.items():
        assert _get(soc, f"/api/v1/cases/{case_id}", headers, status=404) == {"detail": f"case {case_id} not found"}
        assert _get(soc, "/api/v1/alerts", headers, case_id=case_id) == []
        assert _get(soc, "/api/v1/alerts", headers, tenant=tenant) == []
        assert _get(soc, "/api/v1/cases", headers, tenant=tenant) == []
        if role is Role.TENANT_RESPONDER:
            patch = soc.client.patch(f"/api/v1/cases/{case_id}", json={"status": "closed", "resolution": "benign"},
                                     headers=headers)
            assert patch.status_code == 404


@pytest.mark.parametrize("role", MEMBER_ROLES)
def test_a_member_outside_the_campaign_sees_nothing_of_it(soc: SocApi, city: dict[str, int], role: Role) -> None:
    headers = soc.headers(role, tenant=GP)
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert _get(soc, "/api/v1/campaigns", headers) == []
    missing = _get(soc, "/api/v1/campaigns/999999", headers, status=404)
    hidden = _get(soc, f"/api/v1/campaigns/{campaign['id']}", headers, status=404)
    assert hidden == {"detail": f"campaign {campaign['id']} not found"}
    assert set(missing) == set(hidden)
    assert _get(soc, f"/api/v1/cases/{city[GP]}", headers)["campaigns"] == []


@pytest.mark.parametrize("role", [Role.SERVICE, Role.RULE_AUTHOR])
def test_service_and_rule_author_cannot_read_campaigns(soc: SocApi, city: dict[str, int], role: Role) -> None:
    headers = soc.headers(role)
    assert soc.client.get("/api/v1/campaigns", headers=headers).status_code == 403
    assert soc.client.get("/api/v1/campaigns/1", headers=headers).status_code == 403


def test_disclose_decides_by_scope_alone() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    campaign = Campaign(id=5, rule_id="r", title="t", indicator_kind="ip", indicator_value=ATTACKER,
                        first_seen=at, last_seen=at)
    links = [CampaignCase(campaign_id=5, case_id=n, tenant_id=t) for n, t in enumerate((HOSPITAL, SCHOOL, GP), 1)]
    assert disclose(campaign, links, scope=frozenset()) is None  # a tenant role without a tenant
    assert disclose(campaign, links, scope={COUNCIL}) is None
    both = disclose(campaign, links, scope={HOSPITAL, SCHOOL})
    assert isinstance(both, CampaignNotice)
    assert (both.case_ids, both.other_organisations) == ([1, 2], 1)
    assert both.summary == "also seen at 1 other member organisation"
    whole = disclose(campaign, links, scope=None)
    assert isinstance(whole, CampaignOut) and whole.tenants == sorted([HOSPITAL, SCHOOL, GP])


# --- campaign rules ------------------------------------------------------------------------------


def test_the_shipped_campaign_rules_load() -> None:
    rules = load_campaign_rules([DEFAULT_CAMPAIGN_RULES])
    assert {kind for rule in rules for kind in rule.indicators} == set(INDICATOR_KINDS)
    [same] = [rule for rule in rules if "ip" in rule.indicators]
    assert set(same.indicators) == {"ip", "user_agent", "domain", "hash", "user_principal"}
    assert (same.min_tenants, same.min_tenants_for("user_agent"), same.min_tenants_for("domain")) == (2, 3, 2)
    browser = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0 Safari/537.36")
    assert same.ignores("user_agent", browser) and same.ignores("user_agent", "Boto3/1.35.0 md/Botocore#1.35.0")
    assert not same.ignores("user_agent", "python-requests/2.32.3")
    assert same.ignores("ip", "10.20.30.40") and same.ignores("ip", "fe80::1") and not same.ignores("ip", ATTACKER)
    assert same.ignores("domain", "login.microsoftonline.com")
    assert not same.ignores("domain", "microsoftonline.com.evil.example")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1 day\n",
         "window: Value error, '1 day' is not a duration"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1d\nmin_tenants: 1\n",
         "min_tenants: Input should be greater than or equal to 2"),
        ("title: t\nid: not-a-uuid\nindicators: [ip]\nwindow: 1d\n", "id: Value error"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1d\nmin_tenant: 3\n",
         "min_tenant: Extra inputs are not permitted"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [source.ip]\nwindow: 1d\n",
         "indicators: Value error, 'source.ip' is an entity field; name its kind: ip"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip, colour]\nwindow: 1d\n",
         "indicators: Value error, 'colour' is not an indicator kind (kinds: ip, user_agent, domain, hash,"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1d\n"
         "min_tenants_by_kind: {domain: 3}\n", "min_tenants_by_kind names domain, not among this rule's indicators"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1d\n"
         "min_tenants_by_kind: {ip: 1}\n", "min_tenants_by_kind.ip: Input should be greater than or equal to 2"),
        ("title: t\nid: 6f1f3c52-8a4e-4d6b-9a57-0c2f7d1e4b90\nindicators: [ip]\nwindow: 1d\n"
         "ignore: {ip: [10.0.0.0/33]}\n", "ignore.ip: '10.0.0.0/33' is not an address or network (CIDR)"),
    ],
)
def test_a_bad_campaign_rule_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CampaignRuleError) as error:
        load_campaign_rules([tmp_path])
    assert str(error.value).startswith(f"{path} (document 1): ")
    assert problem in str(error.value)


@pytest.fixture
def three_member_soc(tmp_path: Path, db_url: str, clean_db: Any) -> Iterator[SocApi]:
    """The API with one campaign rule of its own: a user agent at three members within an hour."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("title: Same Agent\nid: 0b7f5f0e-2a8e-4d3c-9a61-0f6a1c7c3b21\n"
                     "indicators: [user_agent]\nmin_tenants: 3\nwindow: 1h\n")
    app: FastAPI = create_app(Settings(home=tmp_path / "home", database_url=db_url, campaign_rules=(rules,)))
    with http_client(app) as http:
        yield SocApi(http, app)
    app.state.engine.dispose()


def test_the_campaign_rules_are_configurable(three_member_soc: SocApi, make_alert: MakeAlert) -> None:
    soc = three_member_soc
    for tenant in (HOSPITAL, SCHOOL, COUNCIL):
        soc.add_tenant(tenant)

    def agent(tenant: str, minutes: int) -> dict[str, Any]:
        return make_alert(tenant, level="high", minutes=minutes,
                          entities={"user_agent.original": ["masscan/1.3"], "source.ip": [f"192.0.2.{minutes}"]})

    soc.ingest(agent(HOSPITAL, 0), agent(SCHOOL, 10))
    assert _get(soc, "/api/v1/campaigns", soc.analyst) == []  # two members: below this rule's three
    soc.ingest(agent(COUNCIL, 20))
    [campaign] = _get(soc, "/api/v1/campaigns", soc.analyst)
    assert campaign["indicator"] == {"kind": "user_agent", "value": "masscan/1.3"}
    assert campaign["tenants"] == sorted([HOSPITAL, SCHOOL, COUNCIL])
