"""The intake's registry built from the case API (collectors.attribution_api), and the data-health line a drained
batch leaves, read back through the API. Tests try to cross tenants: another tenant's token, certificate,
cloud account and network."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from fastapi import FastAPI

from case_api.auth.models import Role
from case_api.settings import Settings
from citysoc.caseclient import CaseClient, CaseClientError
from citysoc.deadletter import DeadLetter
from citysoc.health import HealthStore
from citysoc.store import WriteResult
from collectors.attribution import (
    Credential,
    NetworkConflictError,
    Refused,
    SourceAccess,
    SourceRef,
    SourceRegistry,
    Transport,
    networks,
)
from collectors.attribution_api import health_recorder, registry_from
from collectors.records import ParsedBatch, RawRecord
from collectors.spool import SpoolBatch, SpoolPosition

if TYPE_CHECKING:
    from tests.case_api.conftest import Headers, SocApi

NG, RS = "northgate-hospital", "riverside-school"
CERT = "5a" * 32


def secret(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def admin(soc: SocApi, app: FastAPI) -> Iterator[CaseClient]:
    with CaseClient.in_process(app, secret(soc.admin)) as client:
        client.add_tenant(NG, "Northgate")
        client.add_tenant(RS, "Riverside")
        yield client


@pytest.fixture
def service(soc: SocApi, app: FastAPI) -> Iterator[CaseClient]:
    with CaseClient.in_process(app, secret(soc.service)) as client:
        yield client


def test_the_registry_attributes_senders_by_credential_or_network_never_across_tenants(
        admin: CaseClient, service: CaseClient) -> None:
    dmz = admin.add_source(tenant_id=NG, kind="syslog-udp", name="dmz", networks=["192.0.2.0/24"])
    push = admin.add_source(tenant_id=NG, kind="http", name="trail", parser="aws.cloudtrail",
                            cloud_accounts=["111122223333"])
    edge = admin.add_source(tenant_id=RS, kind="syslog-tls", name="edge", certificate_sha256=CERT)
    rs_push = admin.add_source(tenant_id=RS, kind="http", name="push", parser="syslog")

    registry = registry_from(service)
    by_network = registry.resolve(peer="192.0.2.44:514", transport="udp", credential=None)
    assert (by_network.id, by_network.tenant, by_network.parser) == (dmz["id"], NG, "syslog")
    by_token = registry.resolve(peer="203.0.113.5:40000", transport="http",
                                credential=Credential("token", push["token"]))
    assert (by_token.id, by_token.cloud_accounts) == (push["id"], ("111122223333",))
    by_cert = registry.resolve(peer="192.0.2.44:6514", transport="tls", credential=Credential("certificate", CERT))
    assert by_cert.tenant == RS and by_cert.id == edge["id"]  # the certificate decides, not the network it came from

    # riverside's token presented from northgate's network is riverside's, and a guessed one is nobody's
    assert registry.resolve(peer="192.0.2.44:1", transport="http",
                            credential=Credential("token", rs_push["token"])).tenant == RS
    with pytest.raises(Refused, match="unknown token"):
        registry.resolve(peer="192.0.2.44:1", transport="http", credential=Credential("token", push["token"][:-1]))
    with pytest.raises(Refused):  # northgate's udp network does not open tcp
        registry.resolve(peer="192.0.2.44:514", transport="tcp", credential=None)
    with pytest.raises(Refused, match="999988887777 is not registered"):
        registry.check_accounts(by_token, ["999988887777"])


def test_a_rebuilt_registry_follows_deletions_and_new_tokens(admin: CaseClient, service: CaseClient) -> None:
    push = admin.add_source(tenant_id=NG, kind="http", name="push", parser="syslog")
    dmz = admin.add_source(tenant_id=NG, kind="syslog-tcp", name="dmz", networks=["192.0.2.0/24"])
    fresh = admin.issue_source_token(push["id"])["token"]
    admin.delete_source(dmz["id"])

    registry = registry_from(service)
    by_fresh = registry.resolve(peer="198.51.100.1", transport="http", credential=Credential("token", fresh))
    assert by_fresh.id == push["id"]
    with pytest.raises(Refused, match="unknown token"):
        registry.resolve(peer="198.51.100.1", transport="http", credential=Credential("token", push["token"]))
    with pytest.raises(Refused):
        registry.resolve(peer="192.0.2.9:601", transport="tcp", credential=None)


@pytest.mark.parametrize("role", [Role.TENANT_RESPONDER, Role.TENANT_VIEWER, Role.SOC_ANALYST, Role.RULE_AUTHOR])
def test_only_the_service_and_admin_keys_can_load_the_registry(soc: SocApi, app: FastAPI, admin: CaseClient,
                                                               role: Role) -> None:
    tenant = NG if role.is_tenant_bound else None
    with CaseClient.in_process(app, secret(soc.headers(role, tenant=tenant))) as client, \
            pytest.raises(CaseClientError) as refused:
        registry_from(client)
    assert refused.value.status == 403


def drained(tenant: str, records: tuple[RawRecord, ...], source_id: int | None = None) -> SpoolBatch:
    return SpoolBatch(tenant, "syslog", records, SpoolPosition(0), source_id)


def test_a_drained_batch_shows_as_its_sources_health_in_the_api(admin: CaseClient, service: CaseClient,
                                                              settings: Settings) -> None:
    dmz = admin.add_source(tenant_id=NG, kind="syslog-udp", name="dmz", networks=["192.0.2.0/24"])
    admin.add_source(tenant_id=RS, kind="syslog-udp", name="lab", networks=["198.51.100.0/24"])
    registry = registry_from(service)
    record = health_recorder(HealthStore(settings.health_dir), lambda: registry)

    now = datetime.now(UTC)
    event_time = now - timedelta(minutes=2)
    records = tuple(RawRecord(b"<13>x", f"udp 192.0.2.7:514 #{i}", now - timedelta(seconds=5 - i)) for i in range(5))
    table = pa.table({"@timestamp": pa.array([event_time - timedelta(hours=1), event_time],
                                             pa.timestamp("us", tz="UTC"))})
    dead = [DeadLetter(NG, "syslog", "udp 192.0.2.7:514 #3", "no syslog header", "x")]
    record(drained(NG, records), ParsedBatch(tables={"system.syslog": table}, dead=dead),
           WriteResult(stored=3, duplicates=1))

    health = admin.source_health(dmz["id"])
    assert health["events_last_hour"] == 4 and health["dead_letters_last_hour"] == 1
    assert health["last_dead_letter"]["reason"] == "no syslog header"
    assert datetime.fromisoformat(health["last_event_time"]) == event_time
    assert datetime.fromisoformat(health["last_event_received"]) == records[-1].received
    [riverside] = admin.list_sources(tenant=RS)
    assert riverside["health"]["events_last_hour"] == 0


def test_a_batch_whose_source_cannot_be_told_apart_is_not_recorded(admin: CaseClient, service: CaseClient,
                                                                   settings: Settings) -> None:
    udp = admin.add_source(tenant_id=NG, kind="syslog-udp", name="dmz", networks=["192.0.2.0/24"])
    tls = admin.add_source(tenant_id=NG, kind="syslog-tls", name="edge", certificate_sha256=CERT)
    registry: SourceRegistry = registry_from(service)
    record = health_recorder(HealthStore(settings.health_dir), lambda: registry)
    one = (RawRecord(b"x", "udp", datetime.now(UTC)),)
    record(drained(NG, one), ParsedBatch(), WriteResult(1, 0))
    for source in (udp, tls):
        assert admin.source_health(source["id"])["events_last_hour"] == 0
    # the intake names the source it attributed the batch to: recorded under exactly that one
    record(drained(NG, one, source_id=tls["id"]), ParsedBatch(), WriteResult(1, 0))
    assert (admin.source_health(udp["id"])["events_last_hour"], admin.source_health(tls["id"])["events_last_hour"]) \
        == (0, 1)


def test_the_api_refuses_exactly_the_network_claims_the_registry_would_refuse(admin: CaseClient) -> None:
    rng = random.Random(17)
    outcomes: set[bool] = set()
    for attempt in range(40):
        first, second = (str(ip_network(f"10.{rng.randrange(4)}.{rng.randrange(256)}.0/{rng.choice([14, 16, 22, 24])}",
                                         strict=False)) for _ in range(2))
        kinds = ("syslog-udp", rng.choice(["syslog-udp", "syslog-tcp"]))
        admin.add_source(tenant_id=NG, kind=kinds[0], name=f"a{attempt}", networks=[first])
        try:
            admin.add_source(tenant_id=RS, kind=kinds[1], name=f"b{attempt}", networks=[second])
            api_refused = False
        except CaseClientError as error:
            assert error.status == 409
            api_refused = True
        refs = [SourceRef(1, NG, "a", kinds[0], "syslog"), SourceRef(2, RS, "b", kinds[1], "syslog")]
        transports: list[frozenset[Transport]] = [frozenset({"udp"}), frozenset({kinds[1].removeprefix("syslog-")})]
        try:
            SourceRegistry.of([SourceAccess(refs[0], transports[0], networks([first])),
                               SourceAccess(refs[1], transports[1], networks([second]))])
            registry_refused = False
        except NetworkConflictError:
            registry_refused = True
        assert api_refused == registry_refused, (first, second, kinds)
        outcomes.add(api_refused)
        for source in admin.list_sources():
            admin.delete_source(source["id"])
    assert outcomes == {True, False}  # the draw tried both clashing and disjoint claims
