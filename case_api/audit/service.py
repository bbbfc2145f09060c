"""Writing and verifying the audit log.

:func:`record` queues an entry on the session; the entries are chained and inserted when the session
commits, in the same transaction as the change they describe (so a change is never committed without
its entry, nor an entry without its change). Appends are serialised by updating the one
:class:`AuditHead` row first: PostgreSQL holds that row's lock, SQLite its write lock, until the commit,
so two transactions can never chain onto the same entry. The head is taken last, just before COMMIT,
after every other lock of the transaction, so it cannot take part in a deadlock.

Each entry's ``hash`` is SHA-256 over the canonical JSON (sorted keys, no whitespace, UTF-8) of its
fields and ``prev_hash``: AWS CloudTrail's log file integrity validation chains digest files the same
way, per hour rather than per entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.util import identity_key

from case_api.audit.models import GENESIS_HASH, AuditEntry, AuditHead, AuditVerification
from case_api.db import insert_for, utcnow
from case_api.scope import scoped

_PENDING = "citysoc.audit.pending"
_HEAD_ID = 1


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(*, seq: int, at: datetime, actor: str, action: str, target_type: str, target_id: str,
               tenant_id: str | None, detail: dict[str, Any], prev_hash: str) -> str:
    document = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "tenant_id": tenant_id,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Pending:
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    tenant_id: str | None
    detail: dict[str, Any]


def record(session: Session, *, actor: str, action: str, target_type: str, target_id: str | int,
           tenant_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Queue an audit entry, written and chained when ``session`` commits (dropped if it rolls back).

    ``detail`` must be JSON; it is stored as its canonical JSON reads back, so the hash recomputes
    exactly. Never put a secret in it.
    """
    normalised = json.loads(canonical_json(detail or {}))
    entry = _Pending(at=utcnow(), actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                     tenant_id=tenant_id, detail=normalised)
    session.info.setdefault(_PENDING, []).append(entry)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the change itself first: its locks before the head's
    seq, prev_hash = _claim(session, len(pending))
    rows = []
    for entry in pending:
        seq += 1
        digest = entry_hash(seq=seq, at=entry.at, actor=entry.actor, action=entry.action,
                            target_type=entry.target_type, target_id=entry.target_id, tenant_id=entry.tenant_id,
                            detail=entry.detail, prev_hash=prev_hash)
        rows.append({"seq": seq, "at": entry.at, "actor": entry.actor, "action": entry.action,
                     "target_type": entry.target_type, "target_id": entry.target_id, "tenant_id": entry.tenant_id,
                     "detail": entry.detail, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    # Plain statements, not ORM objects: the entries are never read back in the transaction. On PostgreSQL the
    # entries and the head's new hash go in one statement (one round trip), a data-modifying WITH.
    entries = insert(AuditEntry).values(rows)
    head = update(AuditHead).where(AuditHead.id == _HEAD_ID).values(hash=prev_hash)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(head.add_cte(entries.cte("entries")))
    else:
        session.execute(entries)
        session.execute(head)
    stale = session.identity_map.get(identity_key(AuditHead, (_HEAD_ID,)))
    if stale is not None:  # read earlier in the session: what it holds is no longer the head
        session.expire(stale)


def _claim(session: Session, count: int) -> tuple[int, str]:
    """Reserve ``count`` positions after the head: the head's ``seq`` and ``hash`` before them.

    One statement (an upsert of the head row) both locks the head and reads it, so the values read are
    the newest committed ones on both backends.
    """
    insert = insert_for(session)
    statement = (
        insert(AuditHead)
        .values(id=_HEAD_ID, seq=count, hash=GENESIS_HASH)
        .on_conflict_do_update(index_elements=[AuditHead.id], set_={"seq": AuditHead.seq + count})
        .returning(AuditHead.seq, AuditHead.hash)
    )
    new_seq, prev_hash = session.execute(statement).one()
    return int(new_seq) - count, str(prev_hash)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)


def list_entries(*, session: Session, scope: frozenset[str] | None, tenant_id: str | None = None,
                 actor: str | None = None, target_type: str | None = None, target_id: str | None = None,
                 action: str | None = None, limit: int = 100, before_seq: int | None = None) -> list[AuditEntry]:
    """Newest first. A tenant-scoped caller sees only entries about their tenants."""
    # An entry without a tenant (a city user's change, say) is outside every tenant's scope.
    query = scoped(select(AuditEntry), func.coalesce(AuditEntry.tenant_id, ""), scope=scope, tenant_id=tenant_id)
    for column, value in ((AuditEntry.actor, actor), (AuditEntry.target_type, target_type),
                          (AuditEntry.target_id, target_id), (AuditEntry.action, action)):
        if value is not None:
            query = query.where(column == value)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))


def _walk(session: Session, page: int = 1000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > after)
                                    .order_by(AuditEntry.seq).limit(page)))
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].seq
        session.expunge_all()


def verify_chain(*, session: Session) -> AuditVerification:
    """Walk the chain from the first entry; the first entry that breaks it, and why."""
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    for entry in _walk(session):
        reason = None
        if entry.seq != expected_seq:
            reason = (f"entry {entry.seq} follows {expected_seq - 1}: "
                      f"entries {expected_seq}..{entry.seq - 1} are missing")
        elif entry.prev_hash != expected_prev:
            reason = "prev_hash is not the hash of the entry before: an entry before it was changed or replaced"
        else:
            digest = entry_hash(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
                                target_type=entry.target_type, target_id=entry.target_id, tenant_id=entry.tenant_id,
                                detail=entry.detail, prev_hash=entry.prev_hash)
            if digest != entry.hash:
                reason = "its content does not match its hash: the entry was changed"
        if reason is not None:
            return AuditVerification(ok=False, entries=count, head_seq=expected_seq - 1, head_hash=expected_prev,
                                     broken_id=entry.id, broken_seq=entry.seq, reason=reason)
        expected_prev, expected_seq, count = entry.hash, entry.seq + 1, count + 1
    head = session.get(AuditHead, _HEAD_ID)
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (count, expected_prev):
        return AuditVerification(ok=False, entries=count, head_seq=count, head_hash=expected_prev,
                                 broken_seq=count + 1,
                                 reason=f"the head names entry {head_seq} ({head_hash[:12]}...) but the chain ends at "
                                        f"entry {count}: entries at the end were removed or the head was changed")
    return AuditVerification(ok=True, entries=count, head_seq=count, head_hash=expected_prev)
