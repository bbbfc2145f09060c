"""How sources are recognised: kinds, sender networks, cloud accounts, tokens and certificates, and who may
claim what. Two tenants can never claim one sender; a token is shown once and stored only as its digest."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from case_api.auth.models import Role
from case_api.sources.models import Source, SourceEvent

if TYPE_CHECKING:
    from tests.case_api.conftest import Headers, SocApi

NG, RS = "northgate-hospital", "riverside-school"


def post(soc: SocApi, tenant: str, name: str, headers: Headers | None = None, **body: Any) -> Any:
    return soc.client.post("/api/v1/sources", json={"tenant_id": tenant, "name": name, **body},
                           headers=headers or soc.admin)


def created(soc: SocApi, tenant: str, name: str, **body: Any) -> dict[str, Any]:
    response = post(soc, tenant, name, **body)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def tenants(soc: SocApi) -> SocApi:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    return soc


def test_a_udp_source_is_known_by_its_networks_normalised(tenants: SocApi) -> None:
    source = created(tenants, NG, "dmz", kind="syslog-udp", networks=["192.0.2.7/24", "198.51.100.9", "192.0.2.0/24"])
    assert source["transports"] == ["udp"] and source["parser"] == "syslog"
    assert source["networks"] == ["192.0.2.0/24", "198.51.100.9/32"]
    assert source["datasets"] == sorted(["system.auth", "system.syslog", "sysmon_linux.log", "auditd.log", "cef.log",
                                         "leef.log"])
    assert source["token"] is None and source["has_token"] is False


@pytest.mark.parametrize(("body", "advice"), [
    ({"kind": "m365"}, "a m365 source needs tenant_id, client_id, client_secret"),
    ({"kind": "okta.system"}, "'okta.system' is a dataset, not a kind: pull it with a 'okta' source"),
    ({"kind": "okta", "pull": {"domain": "https://acme.okta.com", "token": "00abcSECRET"}},
     "token is a credential: give where the puller finds it"),
    ({"kind": "okta", "pull": {"domain": "http://acme.okta.com", "token": "env:T"}}, "domain must be an https URL"),
    ({"kind": "github", "pull": {"token": "env:T", "bucket": "x"}}, "a github source takes no setting bucket"),
    ({"kind": "syslog", "pull": {"bucket": "x"}}, "a syslog source is not pulled"),
    ({"kind": "netflow"}, "unknown source kind 'netflow'; use one of: syslog-udp"),
    ({"kind": "syslog-udp"}, "can only be recognised by its address"),
    ({"kind": "syslog-udp", "networks": ["192.0.2.300/24"]}, "'192.0.2.300/24' is not a network"),
    ({"kind": "syslog-udp", "networks": ["0.0.0.0/0"]}, "too broad"),
    ({"kind": "syslog-tls"}, "give its networks, or the SHA-256 fingerprint"),
    ({"kind": "http"}, "say which parser"),
    ({"kind": "http", "parser": "aws.cloudtrail", "networks": ["192.0.2.0/24"]}, "recognised by its token"),
    ({"kind": "syslog", "networks": ["192.0.2.0/24"]}, "needs a listener kind"),
    ({"kind": "syslog-udp", "networks": ["192.0.2.0/24"], "parser": "netflow"}, "unknown parser 'netflow'"),
    ({"kind": "auditd", "parser": "syslog"}, "parsed as auditd"),
    ({"kind": "syslog-udp", "networks": ["192.0.2.0/24"], "cloud_accounts": ["111122223333"]},
     "only sources parsed as aws.cloudtrail carry cloud accounts"),
    ({"kind": "syslog-udp", "networks": ["192.0.2.0/24"], "certificate_sha256": "ab" * 32}, "no TLS client cert"),
])
def test_what_cannot_work_is_refused_with_advice(tenants: SocApi, body: dict[str, Any], advice: str) -> None:
    response = post(tenants, NG, "x", **body)
    assert response.status_code == 422, response.text
    assert advice in response.json()["detail"]


@pytest.mark.parametrize("body", [{"cloud_accounts": ["1234"]}, {"certificate_sha256": "xyz"}])
def test_malformed_accounts_and_fingerprints_are_refused(tenants: SocApi, body: dict[str, Any]) -> None:
    response = post(tenants, NG, "x", kind="aws.cloudtrail", **body)
    assert response.status_code == 422, response.text


def test_two_tenants_cannot_claim_overlapping_networks_for_one_transport(tenants: SocApi) -> None:
    created(tenants, NG, "dmz", kind="syslog-udp", networks=["192.0.2.0/24"])
    clash = post(tenants, RS, "lab", kind="syslog-udp", networks=["192.0.2.128/25"])
    assert clash.status_code == 409
    assert "192.0.2.128/25 overlaps 192.0.2.0/24, claimed by northgate-hospital/dmz for udp" in clash.json()["detail"]
    # another transport, or the same tenant again, is fine
    created(tenants, RS, "lab tcp", kind="syslog-tcp", networks=["192.0.2.128/25"])
    created(tenants, NG, "one host", kind="syslog-udp", networks=["192.0.2.25"])
    # and the refused source left nothing behind
    names = [s["name"] for s in tenants.client.get("/api/v1/sources", headers=tenants.admin).json()]
    assert sorted(names) == ["dmz", "lab tcp", "one host"]


def test_a_patch_is_held_to_the_same_rules(tenants: SocApi) -> None:
    created(tenants, NG, "dmz", kind="syslog-tcp", networks=["192.0.2.0/24"])
    lab = created(tenants, RS, "lab", kind="syslog-tcp", networks=["198.51.100.0/24"])
    clash = tenants.client.patch(f"/api/v1/sources/{lab['id']}", json={"networks": ["192.0.2.0/23"]},
                                 headers=tenants.admin)
    assert clash.status_code == 409
    emptied = tenants.client.patch(f"/api/v1/sources/{lab['id']}", json={"networks": []}, headers=tenants.admin)
    assert emptied.status_code == 422 and "recognised by its address" in emptied.json()["detail"]
    moved = tenants.client.patch(f"/api/v1/sources/{lab['id']}", json={"networks": ["203.0.113.0/24"]},
                                 headers=tenants.admin)
    assert moved.status_code == 200 and moved.json()["networks"] == ["203.0.113.0/24"]
    unchanged = tenants.client.get(f"/api/v1/sources/{lab['id']}", headers=tenants.admin).json()
    assert unchanged["networks"] == ["203.0.113.0/24"]


def test_a_cloud_account_belongs_to_one_tenant(tenants: SocApi) -> None:
    created(tenants, NG, "trail", kind="aws.cloudtrail", cloud_accounts=["111122223333"])
    clash = post(tenants, RS, "trail", kind="http", parser="aws.cloudtrail", cloud_accounts=["111122223333"])
    assert clash.status_code == 409 and "111122223333 already belongs to northgate-hospital/trail" in clash.text
    # one tenant may feed its account through two sources (files and a push)
    created(tenants, NG, "trail push", kind="http", parser="aws.cloudtrail", cloud_accounts=["111122223333"])


def test_an_http_token_is_shown_once_and_kept_only_as_its_digest(tenants: SocApi, app: FastAPI) -> None:
    source = created(tenants, NG, "push", kind="http", parser="aws.cloudtrail", cloud_accounts=["111122223333"])
    token = source["token"]
    assert token and len(token) >= 40 and source["has_token"] is True
    listed = tenants.client.get(f"/api/v1/sources/{source['id']}", headers=tenants.admin)
    assert token not in listed.text and "token" not in listed.json()
    with app.state.session_factory() as session:
        row = session.get_one(Source, source["id"])
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        trail = session.scalars(select(SourceEvent)).all()
        assert token not in json.dumps([event.detail for event in trail])

    again = tenants.client.post(f"/api/v1/sources/{source['id']}/token", headers=tenants.admin)
    assert again.status_code == 200
    new_token = again.json()["token"]
    assert new_token != token
    access = tenants.client.get("/api/v1/sources/access", headers=tenants.service).json()
    assert access[0]["token_sha256"] == hashlib.sha256(new_token.encode()).hexdigest()
    udp = created(tenants, NG, "udp", kind="syslog-udp", networks=["192.0.2.0/24"])
    refused = tenants.client.post(f"/api/v1/sources/{udp['id']}/token", headers=tenants.admin)
    assert refused.status_code == 422 and "only http sources" in refused.json()["detail"]


def test_a_certificate_is_pinned_to_one_source_in_any_notation(tenants: SocApi) -> None:
    openssl_form = ":".join(["AB"] * 32)
    source = created(tenants, NG, "edge", kind="syslog-tls", certificate_sha256=openssl_form)
    assert source["certificate_sha256"] == "ab" * 32 and source["transports"] == ["relp", "tls"]
    clash = post(tenants, RS, "edge", kind="syslog-relp", certificate_sha256="ab" * 32)
    assert clash.status_code == 409 and "already pinned to another source" in clash.json()["detail"]
    assert "northgate" not in clash.json()["detail"]


def test_the_access_list_is_for_the_intake_only(tenants: SocApi) -> None:
    created(tenants, NG, "edge", kind="syslog-relp", networks=["192.0.2.0/24"], certificate_sha256="cd" * 32)
    for role, tenant in [(Role.SOC_ANALYST, None), (Role.SOC_LEAD, None), (Role.RULE_AUTHOR, None),
                         (Role.TENANT_RESPONDER, NG), (Role.TENANT_VIEWER, NG)]:
        response = tenants.client.get("/api/v1/sources/access", headers=tenants.headers(role, tenant=tenant))
        assert response.status_code == 403, role
    access = tenants.client.get("/api/v1/sources/access", headers=tenants.service).json()
    assert access == [{"id": access[0]["id"], "tenant_id": NG, "name": "edge", "kind": "syslog-relp",
                       "parser": "syslog", "transports": ["relp", "tls"], "networks": ["192.0.2.0/24"],
                       "cloud_accounts": [], "token_sha256": None, "certificate_sha256": "cd" * 32,
                       "pull": {}}]


def test_a_tenant_key_onboards_token_sources_but_claims_nothing_the_city_must_vouch_for(tenants: SocApi) -> None:
    responder = tenants.headers(Role.TENANT_RESPONDER, tenant=RS)
    push = post(tenants, RS, "push", headers=responder, kind="http", parser="syslog")
    assert push.status_code == 201 and push.json()["token"]
    claim = post(tenants, RS, "dmz", headers=responder, kind="syslog-udp", networks=["192.0.2.0/24"])
    assert claim.status_code == 403 and "vouched for by the city SOC" in claim.json()["detail"]
    account = post(tenants, RS, "trail", headers=responder, kind="aws.cloudtrail", cloud_accounts=["111122223333"])
    assert account.status_code == 403
    # a fingerprint is public: pinning northgate's certificate would file northgate's records under riverside
    pin = post(tenants, RS, "edge", headers=responder, kind="syslog-tls", certificate_sha256="ef" * 32)
    assert pin.status_code == 403
    edge = created(tenants, RS, "edge", kind="syslog-tls", networks=["198.51.100.0/24"])
    repin = tenants.client.patch(f"/api/v1/sources/{edge['id']}", json={"certificate_sha256": "ef" * 32},
                                 headers=responder)
    assert repin.status_code == 403
    patch = tenants.client.patch(f"/api/v1/sources/{push.json()['id']}", json={"datasets": ["system.auth"]},
                                 headers=responder)
    assert patch.status_code == 200 and patch.json()["datasets"] == ["system.auth"]


def test_another_tenants_source_cannot_be_changed_read_or_deleted(tenants: SocApi) -> None:
    theirs = created(tenants, NG, "push", kind="http", parser="syslog")
    responder = tenants.headers(Role.TENANT_RESPONDER, tenant=RS)
    path = f"/api/v1/sources/{theirs['id']}"
    assert tenants.client.get(path, headers=responder).status_code == 404
    assert tenants.client.patch(path, json={"datasets": []}, headers=responder).status_code == 404
    assert tenants.client.post(f"{path}/token", headers=responder).status_code == 404
    assert tenants.client.delete(path, headers=responder).status_code == 404
    viewer = tenants.headers(Role.TENANT_VIEWER, tenant=NG)
    assert tenants.client.delete(path, headers=viewer).status_code == 403
    assert tenants.client.get(path, headers=tenants.admin).status_code == 200


def test_every_change_is_audited_with_the_actor_key_and_outlives_the_source(tenants: SocApi) -> None:
    lead = tenants.headers(Role.SOC_LEAD, name="lead-alice")
    source = created(tenants, NG, "dmz", kind="syslog-udp", networks=["192.0.2.0/24"])
    path = f"/api/v1/sources/{source['id']}"
    assert tenants.client.patch(path, json={"networks": ["192.0.2.0/25"]}, headers=lead).status_code == 200
    assert tenants.client.patch(path, json={"networks": ["192.0.2.0/25"]}, headers=lead).status_code == 200  # no-op
    assert tenants.client.delete(path, headers=lead).status_code == 204
    assert tenants.client.get(path, headers=tenants.admin).status_code == 404

    trail = tenants.client.get("/api/v1/sources/audit", params={"source_id": source["id"]},
                               headers=tenants.analyst).json()
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("deleted", "lead-alice"), ("changed", "lead-alice"), ("created", "test-admin")]
    assert trail[1]["detail"] == {"networks": {"from": ["192.0.2.0/24"], "to": ["192.0.2.0/25"]}}
    assert trail[2]["detail"]["networks"] == ["192.0.2.0/24"] and trail[2]["source_name"] == "dmz"
    # the tenant's own keys read its trail; another tenant's keys see none of it
    own = tenants.client.get("/api/v1/sources/audit", headers=tenants.headers(Role.TENANT_VIEWER, tenant=NG))
    assert len(own.json()) == 3
    other = tenants.client.get("/api/v1/sources/audit", params={"tenant": NG},
                               headers=tenants.headers(Role.TENANT_VIEWER, tenant=RS))
    assert other.status_code == 200 and other.json() == []


def test_a_deleted_sources_id_is_never_given_to_another_source(tenants: SocApi) -> None:
    first = created(tenants, NG, "push", kind="http", parser="syslog")
    assert tenants.client.delete(f"/api/v1/sources/{first['id']}", headers=tenants.admin).status_code == 204
    second = created(tenants, RS, "push", kind="http", parser="syslog")
    assert second["id"] > first["id"]


def test_pulled_sources_keep_credential_references_and_only_the_city_registers_them(tenants: SocApi) -> None:
    pull = {"domain": "https://northgate.okta.com", "token": "env:NORTHGATE_OKTA_TOKEN", "since": "2026-12-01"}
    okta = created(tenants, NG, "okta", kind="okta", pull=pull)
    assert okta["parser"] == "okta.system" and okta["datasets"] == ["okta.system"] and okta["pull"] == pull
    assert okta["transports"] == [] and okta["token"] is None
    access = tenants.client.get("/api/v1/sources/access", headers=tenants.service).json()
    assert [entry["pull"] for entry in access if entry["id"] == okta["id"]] == [pull]
    # a member's key cannot point the city's puller at a credential reference or a file of its choosing
    responder = tenants.headers(Role.TENANT_RESPONDER, tenant=RS)
    theirs = post(tenants, RS, "okta", headers=responder, kind="okta",
                  pull={**pull, "token": "env:NORTHGATE_OKTA_TOKEN"})
    assert theirs.status_code == 403 and "credentials the city SOC keeps" in theirs.json()["detail"]
    # a secret pasted as a value is refused and repeated nowhere: not in the answer, the trail or the table
    pasted = post(tenants, NG, "okta-2", kind="okta", pull={**pull, "token": "00aSECRETTOKENVALUE"})
    assert pasted.status_code == 422 and "SECRETTOKENVALUE" not in pasted.text
    trail = tenants.client.get("/api/v1/sources/audit", headers=tenants.admin).text
    assert "env:NORTHGATE_OKTA_TOKEN" in trail and "SECRETTOKENVALUE" not in trail
    s3 = created(tenants, NG, "trail", kind="aws-s3", cloud_accounts=["111122223333"],
                 pull={"bucket": "ng-trail", "queue_url": "https://sqs.eu-west-2.amazonaws.com/1/ng"})
    assert s3["parser"] == "aws.cloudtrail" and s3["pull"]["bucket"] == "ng-trail"
    streamed = created(tenants, NG, "github-stream", kind="aws-s3", parser="github.audit", pull={"bucket": "ng-gh"})
    assert streamed["datasets"] == ["github.audit"]


def test_an_http_sources_pubsub_push_identity_is_the_citys_to_register_and_names_one_source(tenants: SocApi) -> None:
    from collectors.attribution_api import source_access

    identity = {"push_service_account": "citysoc-push@ng-prod.iam.gserviceaccount.com",
                "push_audience": "https://intake.citysoc.example/v1/events?source=gcp.audit"}
    pushed = created(tenants, NG, "gcp push", kind="http", parser="gcp.audit", pull=identity)
    assert pushed["pull"] == identity and pushed["token"]  # the endpoint URL's token stays for pushes without one
    [entry] = [entry for entry in tenants.client.get("/api/v1/sources/access", headers=tenants.service).json()
               if entry["id"] == pushed["id"]]
    assert source_access(entry).push_identity == (identity["push_service_account"], identity["push_audience"])
    again = post(tenants, RS, "gcp push", kind="http", parser="gcp.audit", pull=identity)
    assert again.status_code == 409 and "already northgate-hospital/gcp push's" in again.json()["detail"]
    responder = tenants.headers(Role.TENANT_RESPONDER, tenant=RS)
    theirs = post(tenants, RS, "gcp push 2", headers=responder, kind="http", parser="gcp.audit",
                  pull={**identity, "push_audience": "https://elsewhere.example/"})
    assert theirs.status_code == 403 and "ask the city SOC" in theirs.json()["detail"]
    half = post(tenants, RS, "gcp push 3", kind="http", parser="gcp.audit",
                pull={"push_service_account": identity["push_service_account"]})
    assert half.status_code == 422 and "needs both push_service_account and push_audience" in half.json()["detail"]
    other = post(tenants, RS, "gcp push 4", kind="http", parser="gcp.audit", pull={"bucket": "x"})
    assert other.status_code == 422 and "an http source takes no setting bucket" in other.json()["detail"]
