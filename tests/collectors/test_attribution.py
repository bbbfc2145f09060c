"""Attribution: a sender's tenant comes from its credential or its network, never from what it sends."""

from __future__ import annotations

import pytest

from collectors.attribution import (
    Credential,
    NetworkConflictError,
    Refused,
    SourceAccess,
    SourceRef,
    SourceRegistry,
    networks,
    token_digest,
)

COUNCIL_SYSLOG = SourceRef(1, "riverside-council", "dmz syslog", "syslog-udp", "syslog")
COUNCIL_HOST = SourceRef(2, "riverside-council", "mail relay", "syslog-tcp", "syslog")
HOSPITAL_HTTP = SourceRef(3, "northgate-hospital", "cloudtrail push", "http", "aws.cloudtrail", ("111122223333",))
SCHOOL_TLS = SourceRef(4, "harbour-school", "edge firewall", "syslog-tls", "syslog")


@pytest.fixture
def registry() -> SourceRegistry:
    return SourceRegistry.of([
        SourceAccess(COUNCIL_SYSLOG, frozenset({"udp", "tcp"}), networks(["192.0.2.0/24"])),
        SourceAccess(COUNCIL_HOST, frozenset({"tcp"}), networks(["192.0.2.25"])),
        SourceAccess(HOSPITAL_HTTP, frozenset({"http"}), token_sha256=token_digest("hospital-secret")),
        SourceAccess(SCHOOL_TLS, frozenset({"tls", "relp"}), certificate_sha256="ab" * 32),
    ])


def test_the_most_specific_network_of_the_transport_wins(registry: SourceRegistry) -> None:
    assert registry.resolve(peer="192.0.2.7:514", transport="udp", credential=None) == COUNCIL_SYSLOG
    assert registry.resolve(peer="192.0.2.25:40000", transport="tcp", credential=None) == COUNCIL_HOST
    assert registry.resolve(peer="192.0.2.25", transport="udp", credential=None) == COUNCIL_SYSLOG
    assert registry.resolve(peer="::ffff:192.0.2.9", transport="udp", credential=None) == COUNCIL_SYSLOG


def test_unknown_senders_and_transports_are_refused_with_advice(registry: SourceRegistry) -> None:
    with pytest.raises(Refused, match=r"no source of any member organisation accepts udp from 198\.51\.100\.9"):
        registry.resolve(peer="198.51.100.9:514", transport="udp", credential=None)
    with pytest.raises(Refused, match="relp"):  # the council's network is for udp and tcp only
        registry.resolve(peer="192.0.2.7:2514", transport="relp", credential=None)
    with pytest.raises(Refused):
        registry.resolve(peer="not-an-address", transport="udp", credential=None)


def test_a_credential_decides_and_a_wrong_one_is_refused(registry: SourceRegistry) -> None:
    token = Credential("token", "hospital-secret")
    assert registry.resolve(peer="192.0.2.7:5000", transport="http", credential=token) == HOSPITAL_HTTP
    with pytest.raises(Refused, match="unknown token"):  # another tenant's network does not rescue a bad token
        registry.resolve(peer="192.0.2.7:5000", transport="http", credential=Credential("token", "guess"))
    certificate = Credential("certificate", "AB" * 32)
    assert registry.resolve(peer="203.0.113.1:6514", transport="tls", credential=certificate) == SCHOOL_TLS
    with pytest.raises(Refused, match="not for http"):
        registry.resolve(peer="203.0.113.1", transport="http", credential=certificate)


def test_cloud_accounts_are_bound_to_their_source(registry: SourceRegistry) -> None:
    registry.check_accounts(HOSPITAL_HTTP, ["111122223333"])
    with pytest.raises(Refused, match="999988887777 is not registered for northgate-hospital"):
        registry.check_accounts(HOSPITAL_HTTP, ["111122223333", "999988887777"])
    with pytest.raises(Refused):
        registry.check_accounts(COUNCIL_SYSLOG, ["111122223333"])


def test_two_tenants_cannot_claim_overlapping_networks() -> None:
    school = SourceRef(5, "harbour-school", "lab", "syslog-udp", "syslog")
    with pytest.raises(NetworkConflictError, match="overlaps"):
        SourceRegistry.of([SourceAccess(COUNCIL_SYSLOG, frozenset({"udp"}), networks(["192.0.2.0/24"])),
                           SourceAccess(school, frozenset({"udp"}), networks(["192.0.2.128/25"]))])
    # the same networks on different transports, or within one tenant, are fine
    SourceRegistry.of([SourceAccess(COUNCIL_SYSLOG, frozenset({"udp"}), networks(["192.0.2.0/24"])),
                       SourceAccess(school, frozenset({"tcp"}), networks(["192.0.2.128/25"])),
                       SourceAccess(COUNCIL_HOST, frozenset({"udp"}), networks(["192.0.2.25"]))])
