"""Which tenant and source a sender's records belong to: decided by credentials and networks, never by content.

A member organisation's source is known by what it presents, in this order:
1. a credential: the bearer token of an HTTP source, the SHA-256 fingerprint of a TLS client
   certificate issued to a syslog-tls or syslog-relp source, or the service account and audience of a
   Google-signed ID token that an HTTP source's push settings name (a Pub/Sub push subscription with
   authentication; the token is verified before it gets here, `collectors.google_id`);
2. else the sender's address, inside a network configured for a source of that transport
   (`soc sources add --kind syslog-udp --network 192.0.2.0/24 ...`); the most specific network wins,
   and two tenants may not claim overlapping networks for one transport (`NetworkConflictError`).

Nothing in a message (hostname, tag, an account id) can move it to another tenant. A sender that no
source claims is refused (`Refused`, with a reason a partner can act on).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal

from collectors.errors import CollectorError

Transport = Literal["udp", "tcp", "tls", "relp", "http"]


class Refused(CollectorError):
    """A sender whose records no source claims, or a credential that does not fit; nothing is stored.
    `reason` is what to tell the sender (HTTP 4xx body, RELP error, log line)."""


class NetworkConflictError(CollectorError):
    """Two sources of different tenants claim overlapping networks for one transport."""


@dataclass(frozen=True)
class Credential:
    """What a sender presented: an HTTP bearer token as sent, a TLS client certificate's SHA-256 (hex), or
    the verified identity of a Google-signed push token (`push_credential`)."""

    kind: Literal["token", "certificate", "google-push"]
    value: str


def push_credential(service_account: str, audience: str) -> Credential:
    """The credential of a verified Pub/Sub push ID token (its `email` and `aud`)."""
    return Credential("google-push", f"{service_account}\n{audience}")


@dataclass(frozen=True)
class SourceRef:
    """A registered source, as the intake needs it."""

    id: int
    tenant: str
    name: str
    kind: str  # as registered: syslog-udp, syslog-tcp, syslog-tls, syslog-relp, http, aws.cloudtrail, ...
    parser: str  # the LogParser name its records go to: syslog, aws.cloudtrail, auditd
    cloud_accounts: tuple[str, ...] = ()  # AWS account ids this source may carry; others are refused


@dataclass(frozen=True)
class SourceAccess:
    """How a source is recognised: its transports' networks, its token's hash, its certificate's fingerprint."""

    source: SourceRef
    transports: frozenset[Transport]
    networks: tuple[IPv4Network | IPv6Network, ...] = ()
    token_sha256: str | None = None  # hex digest of the bearer token; the token itself is never kept
    certificate_sha256: str | None = None  # hex fingerprint of the DER certificate, lower case
    push_identity: tuple[str, str] | None = None  # (service account, audience) of Pub/Sub push ID tokens


def token_digest(token: str) -> str:
    """The hex SHA-256 a token is kept as."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SourceRegistry:
    """Resolves senders to sources (see the module doc). Built from the case API's sources (`access`)."""

    access: list[SourceAccess] = field(default_factory=list)

    def __post_init__(self) -> None:
        claimed: list[tuple[SourceAccess, Transport, IPv4Network | IPv6Network]] = []
        for entry in self.access:
            for transport in entry.transports:
                for network in entry.networks:
                    for other, other_transport, other_network in claimed:
                        if (other_transport == transport and other.source.tenant != entry.source.tenant
                                and network.version == other_network.version and network.overlaps(other_network)):
                            raise NetworkConflictError(
                                f"{network} ({entry.source.tenant}/{entry.source.name}) overlaps {other_network} "
                                f"({other.source.tenant}/{other.source.name}) for {transport}: a sender must "
                                "belong to one tenant")
                    claimed.append((entry, transport, network))

    @classmethod
    def of(cls, access: Iterable[SourceAccess]) -> SourceRegistry:
        return cls(list(access))

    def resolve(self, *, peer: str, transport: Transport, credential: Credential | None) -> SourceRef:
        """The source of a sender; `Refused` when none claims it or its credential fits no source."""
        if credential is not None:
            return self._by_credential(credential, transport)
        address = _address(peer)
        best: tuple[int, SourceAccess] | None = None
        for entry in self.access:
            if transport not in entry.transports:
                continue
            for network in entry.networks:
                if address is not None and address.version == network.version and address in network \
                        and (best is None or network.prefixlen > best[0]):
                    best = (network.prefixlen, entry)
        if best is None:
            raise Refused(f"no source of any member organisation accepts {transport} from {peer}: register the "
                          "sender's network (soc sources add --network) or give it a credential", where=peer)
        return best[1].source

    def _by_credential(self, credential: Credential, transport: Transport) -> SourceRef:
        if credential.kind == "google-push":
            return self._by_push_identity(credential, transport)
        for entry in self.access:
            expected = entry.token_sha256 if credential.kind == "token" else entry.certificate_sha256
            presented = token_digest(credential.value) if credential.kind == "token" else credential.value.lower()
            if expected is not None and hmac.compare_digest(expected, presented):
                if transport not in entry.transports:
                    raise Refused(f"the credential of {entry.source.name!r} is not for {transport}")
                return entry.source
        what = "token" if credential.kind == "token" else "client certificate"
        raise Refused(f"unknown {what}: no source of any member organisation was issued it")

    def _by_push_identity(self, credential: Credential, transport: Transport) -> SourceRef:
        service_account, _, audience = credential.value.partition("\n")
        claimed = [entry for entry in self.access if entry.push_identity == (service_account, audience)
                   and transport in entry.transports]
        if len(claimed) == 1:
            return claimed[0].source
        if claimed:
            raise Refused(f"{len(claimed)} sources name the push service account {service_account} with audience "
                          f"{audience}: the city SOC keeps one")
        raise Refused(f"no source of any member organisation takes pushes signed for {service_account} with "
                      f"audience {audience}: the city SOC registers them on the member's http source "
                      "(push_service_account, push_audience)")

    def check_accounts(self, source: SourceRef, accounts: Iterable[str]) -> None:
        """`Refused` when a record names a cloud account the source was not registered with."""
        foreign = sorted({account for account in accounts if account and account not in source.cloud_accounts})
        if foreign:
            raise Refused(f"cloud account {', '.join(foreign)} is not registered for {source.tenant}/{source.name}: "
                          "add it to the source (soc sources add --account) or send it to its own tenant's source")


def _address(peer: str) -> IPv4Address | IPv6Address | None:
    host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer  # "192.0.2.7:51234" or a bare address
    host = host.strip("[]")
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def networks(texts: Iterable[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parsed networks (`192.0.2.0/24`, a bare address is its /32 or /128); ValueError with the bad text."""
    return tuple(ip_network(text.strip(), strict=False) for text in texts)
