"""Source queries and changes. Every read takes the caller's tenant scope (``None`` = all tenants); every
change writes one line to the sources' audit trail, in the same transaction."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from case_api.audit.service import record
from case_api.auth.models import Principal
from case_api.errors import ConflictError, InvalidRequestError, NotFoundError
from case_api.scope import scoped
from case_api.sources.claims import (
    check_conflicts,
    check_fits_kind,
    check_may_claim,
    lock_claims,
    normalise_networks,
)
from case_api.sources.kinds import PARSER_DATASETS, resolve_parser, source_kind
from case_api.sources.models import Source, SourceEvent, SourceIn, SourcePatch
from case_api.sources.pull import check_pull_settings
from case_api.tenants.service import require_tenants


def token_sha256(token: str) -> str:
    """The hex SHA-256 a token is kept as (what `collectors.attribution.token_digest` compares)."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_source(*, session: Session, source_in: SourceIn, actor: Principal) -> tuple[Source, str | None]:
    """Register a source; returns it with its new bearer token (http sources) to show once, else None."""
    require_tenants(session=session, tenant_ids=[source_in.tenant_id])
    kind = source_kind(source_in.kind)
    parser = resolve_parser(kind, source_in.parser)
    networks = normalise_networks(source_in.networks)
    accounts = sorted(set(source_in.cloud_accounts))
    check_fits_kind(kind, parser=parser, networks=networks, cloud_accounts=accounts,
                    certificate_sha256=source_in.certificate_sha256)
    check_may_claim(actor, networks=networks, cloud_accounts=accounts,
                    certificate_sha256=source_in.certificate_sha256)
    pull = check_pull_settings(kind, dict(source_in.pull), actor)
    token = secrets.token_urlsafe(32) if kind.credential == "token" else None
    source = Source(tenant_id=source_in.tenant_id, kind=kind.name, name=source_in.name, parser=parser,
                    datasets=sorted(set(source_in.datasets or PARSER_DATASETS[parser])), networks=networks,
                    cloud_accounts=accounts, token_sha256=token_sha256(token) if token else None,
                    certificate_sha256=source_in.certificate_sha256, pull=pull or None)
    lock_claims(session)
    session.add(source)
    _flush(session, source)
    _check_conflicts(session, source)
    detail: dict[str, Any] = {"kind": source.kind, "parser": source.parser, "datasets": source.datasets,
                              "networks": networks, "cloud_accounts": accounts,
                              "certificate_sha256": source.certificate_sha256, "token": "issued" if token else None,
                              "pull": pull}  # references to credentials, never a secret
    _audit(session, source, actor, "created", {k: v for k, v in detail.items() if v})
    session.commit()
    return source, token


def list_sources(*, session: Session, scope: Collection[str] | None, tenant_id: str | None = None) -> list[Source]:
    query = scoped(select(Source), Source.tenant_id, scope=scope, tenant_id=tenant_id)
    query = query.order_by(Source.tenant_id, Source.name)
    return list(session.scalars(query))


def get_source(*, session: Session, source_id: int, scope: Collection[str] | None) -> Source:
    """The source, if it exists in a tenant the caller may see; another tenant's is not found (404)."""
    source = session.scalars(scoped(select(Source).where(Source.id == source_id), Source.tenant_id,
                                    scope=scope)).first()
    if source is None:
        raise NotFoundError(f"source {source_id} not found")
    return source


def update_source(*, session: Session, source_id: int, scope: Collection[str] | None, patch: SourcePatch,
                  actor: Principal) -> Source:
    """Apply the fields given in `patch`; one audit line lists each changed field as from/to."""
    source = get_source(session=session, source_id=source_id, scope=scope)
    changes: dict[str, dict[str, Any]] = {}
    for field in ("datasets", "networks", "cloud_accounts", "certificate_sha256"):
        if field not in patch.model_fields_set:
            continue
        value = _normalised(field, getattr(patch, field))
        if value != getattr(source, field):
            changes[field] = {"from": getattr(source, field), "to": value}
    if not changes:
        return source
    after = {field: change["to"] for field, change in changes.items()}
    check_fits_kind(source_kind(source.kind), parser=source.parser,
                    networks=after.get("networks", source.networks),
                    cloud_accounts=after.get("cloud_accounts", source.cloud_accounts),
                    certificate_sha256=after.get("certificate_sha256", source.certificate_sha256))
    check_may_claim(actor, networks=after.get("networks", []), cloud_accounts=after.get("cloud_accounts", []),
                    certificate_sha256=after.get("certificate_sha256"))
    lock_claims(session)
    for field, value in after.items():
        setattr(source, field, value)
    _flush(session, source)
    _check_conflicts(session, source)
    _audit(session, source, actor, "changed", changes)
    session.commit()
    return source


def _normalised(field: str, value: Any) -> Any:
    if field == "certificate_sha256":
        return value  # None unpins the certificate
    if value is None:
        raise InvalidRequestError(f"{field} cannot be null: give [] to clear it, or leave it out to keep it")
    return normalise_networks(value) if field == "networks" else sorted(set(value))


def issue_token(*, session: Session, source_id: int, scope: Collection[str] | None,
                actor: Principal) -> tuple[Source, str]:
    """A new bearer token for an http source; the previous one stops working at once."""
    source = get_source(session=session, source_id=source_id, scope=scope)
    if source_kind(source.kind).credential != "token":
        raise InvalidRequestError(f"a {source.kind} source has no bearer token: only http sources do")
    token = secrets.token_urlsafe(32)
    replaced = source.token_sha256 is not None
    source.token_sha256 = token_sha256(token)
    _audit(session, source, actor, "token_issued", {"replaced": replaced})
    session.commit()
    return source, token


def delete_source(*, session: Session, source_id: int, scope: Collection[str] | None, actor: Principal) -> None:
    """Remove a source: its senders are refused from the next registry load; its audit trail stays."""
    source = get_source(session=session, source_id=source_id, scope=scope)
    _audit(session, source, actor, "deleted", {"kind": source.kind, "networks": source.networks,
                                                "cloud_accounts": source.cloud_accounts})
    session.delete(source)
    session.commit()


def list_access(*, session: Session) -> list[Source]:
    """Every source, for the intake's registry (city-wide by nature: attribution decides the tenant)."""
    return list(session.scalars(select(Source).order_by(Source.id)))


def list_source_events(*, session: Session, scope: Collection[str] | None, tenant_id: str | None = None,
                       source_id: int | None = None, limit: int = 500) -> list[SourceEvent]:
    query = scoped(select(SourceEvent), SourceEvent.tenant_id, scope=scope, tenant_id=tenant_id)
    if source_id is not None:
        query = query.where(SourceEvent.source_id == source_id)
    return list(session.scalars(query.order_by(SourceEvent.id.desc()).limit(limit)))


def _flush(session: Session, source: Source) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        if "certificate" in str(exc.orig):
            raise ConflictError("that client certificate is already pinned to another source: issue each sender "
                                "its own certificate") from exc
        raise ConflictError(
            f"tenant {source.tenant_id!r} already has a source named {source.name!r}: choose another name"
        ) from exc


def _check_conflicts(session: Session, source: Source) -> None:
    try:
        check_conflicts(session, source)
    except ConflictError:
        session.rollback()  # the flushed change goes, and the claims lock with it
        raise


def _audit(session: Session, source: Source, actor: Principal, action: str, detail: dict[str, Any]) -> None:
    session.add(SourceEvent(tenant_id=source.tenant_id, source_id=source.id, source_name=source.name,
                            actor=actor.actor, actor_key_id=actor.key_id or 0, action=action, detail=detail))
    record(session, actor=actor.actor, action=f"source.{action}", target_type="source", target_id=source.id,
           tenant_id=source.tenant_id, detail={"name": source.name, **detail})
