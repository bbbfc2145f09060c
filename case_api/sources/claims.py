"""What a source claims (sender networks, cloud accounts, a client certificate) and the rules those claims obey.

A claim decides which tenant a sender's records are filed under, so:
- each claim must fit the source's kind (a UDP sender can only be known by its network; an HTTP source
  only by its token);
- two tenants may never claim overlapping networks for one transport, nor the same cloud account, nor
  the same certificate (the rule `collectors.attribution.SourceRegistry` enforces when it loads them);
- networks, cloud accounts and certificate fingerprints are assertions about who owns an address range,
  an account or a certificate's key (a fingerprint is public: pinning someone else's would file their
  records under the pinning tenant). Only the city SOC (and its service role) may make them, never a
  tenant's own key; a tenant key onboards sources whose credential the API issues (http tokens).

Checks run with the claims locked (`lock_claims`), so two concurrent requests cannot both pass them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_network

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from case_api.auth.models import Principal
from case_api.errors import ConflictError, InvalidRequestError, PermissionDeniedError
from case_api.sources.kinds import CLOUD_PARSERS, SourceKind
from case_api.sources.models import Source

#: Broadest networks one source may claim: a wider claim would file most of the Internet under one tenant.
MIN_PREFIX = {4: 8, 6: 32}
# Any constant: the PostgreSQL advisory lock every claim change takes (SQLite serialises writers already).
_CLAIMS_LOCK = 0x50C50C


def normalise_networks(texts: Iterable[str]) -> list[str]:
    """Sorted, de-duplicated CIDR texts (`192.0.2.7/24` -> `192.0.2.0/24`, a bare address -> its /32 or /128)."""
    parsed: set[IPv4Network | IPv6Network] = set()
    for value in texts:
        try:
            network = ip_network(value.strip(), strict=False)
        except ValueError:
            raise InvalidRequestError(f"{value!r} is not a network: give CIDR like 192.0.2.0/24 or 2001:db8::/48, "
                                      "or one address") from None
        if network.prefixlen < MIN_PREFIX[network.version]:
            raise InvalidRequestError(f"{network} is too broad for one member's senders: the widest network a source "
                                      f"may claim is /{MIN_PREFIX[network.version]} for IPv{network.version}")
        parsed.add(network)
    return [str(network) for network in sorted(parsed, key=lambda n: (n.version, n.network_address, n.prefixlen))]


def check_fits_kind(kind: SourceKind, *, parser: str, networks: Sequence[str], cloud_accounts: Sequence[str],
                    certificate_sha256: str | None) -> None:
    """`InvalidRequestError` with advice when the claims do not fit what the kind can present."""
    if networks and kind.networks == "refused":
        how = ("by its token" if kind.credential == "token"
               else "from files (soc ingest); a sender streaming to the intake needs a listener kind "
                    "(syslog-udp, syslog-tcp, syslog-tls, syslog-relp)")
        raise InvalidRequestError(f"a {kind.name} source has no sender network: it is recognised {how}")
    if kind.networks == "required" and not networks:
        raise InvalidRequestError(f"a {kind.name} sender can only be recognised by its address: give the "
                                  "networks it sends from (networks, e.g. 192.0.2.0/24)")
    if certificate_sha256 and kind.credential != "certificate":
        raise InvalidRequestError(f"a {kind.name} source has no TLS client certificate: only syslog-tls and "
                                  "syslog-relp sources do")
    if kind.credential == "certificate" and not networks and not certificate_sha256:
        raise InvalidRequestError(f"a {kind.name} sender must be recognisable: give its networks, or the "
                                  "SHA-256 fingerprint of its TLS client certificate (mutual TLS), or both")
    if cloud_accounts and parser not in CLOUD_PARSERS:
        raise InvalidRequestError(f"only sources parsed as {', '.join(sorted(CLOUD_PARSERS))} carry cloud accounts; "
                                  f"this one is parsed as {parser}")


def check_may_claim(principal: Principal, *, networks: Sequence[str], cloud_accounts: Sequence[str],
                    certificate_sha256: str | None) -> None:
    if principal.role.is_tenant_bound and (networks or cloud_accounts or certificate_sha256):
        raise PermissionDeniedError("sender networks, cloud accounts and client certificates are vouched for by the "
                                    "city SOC: ask it to add them (a tenant key may onboard http sources, whose "
                                    "token the API issues)")


def lock_claims(session: Session) -> None:
    """Hold the claims lock until the transaction ends (PostgreSQL); SQLite's one writer at a time does the same
    once the caller has flushed its change, which it does before `check_conflicts`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIMS_LOCK})


def check_conflicts(session: Session, source: Source) -> None:
    """`ConflictError` naming the other source when `source` claims what another tenant's source holds."""
    others = session.scalars(select(Source).where(Source.id != source.id)).all()
    mine = [ip_network(text) for text in source.networks]
    for other in others:
        if other.certificate_sha256 and other.certificate_sha256 == source.certificate_sha256:
            raise ConflictError("that client certificate is already pinned to another source: issue each sender "
                                "its own certificate")
        identity = _push_identity(source)
        if identity is not None and identity == _push_identity(other):
            raise ConflictError(f"the push identity {identity[0]} with audience {identity[1]} is already "
                                f"{other.tenant_id}/{other.name}'s: a push subscription feeds one source")
        if other.tenant_id == source.tenant_id:
            continue
        shared = sorted(set(source.cloud_accounts) & set(other.cloud_accounts))
        if shared:
            # Only city roles may make claims (check_may_claim), so naming the holder is no leak.
            raise ConflictError(f"cloud account {', '.join(shared)} already belongs to {other.tenant_id}/{other.name}: "
                                "an account's records are filed under one tenant only")
        transports = set(source.transports) & set(other.transports)
        if not transports:
            continue
        for network in mine:
            for other_text in other.networks:
                other_network = ip_network(other_text)
                if network.version == other_network.version and network.overlaps(other_network):
                    raise ConflictError(
                        f"{network} overlaps {other_network}, claimed by {other.tenant_id}/{other.name} for "
                        f"{', '.join(sorted(transports))}: a sender must belong to one tenant; narrow the "
                        "network or recognise the sender by a certificate")


def _push_identity(source: Source) -> tuple[str, str] | None:
    settings = source.pull_settings if source.kind == "http" else {}
    account, audience = settings.get("push_service_account"), settings.get("push_audience")
    return (str(account), str(audience)) if account and audience else None
