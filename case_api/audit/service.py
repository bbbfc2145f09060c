"""Writing and verifying the audit log.

:func:`record` queues an entry on the session; the entries are chained and inserted when the session
commits, in the same transaction as the change they describe (so a change is never committed without
its entry, nor an entry without its change). Appends are serialised by updating the one
:class:`AuditHead` row first: PostgreSQL holds that row's lock, SQLite its write lock, until the commit,
so two transactions can never chain onto the same entry. The head is taken last, just before COMMIT,
after every other lock of the transaction, so it cannot take part in a deadlock.

Every append of the deployment waits for that one lock, so on PostgreSQL it is held for no client round trip:
the head's claim, the entries (their hashes computed by the server from the canonical JSON made here, see
:func:`_hash_parts`) with the head's new hash, and COMMIT go to the server together in one pipeline when the
transaction commits (:func:`_append_with_commit`). Taken by a first statement and released at a COMMIT sent
after the answer came back, the lock was held across two round trips and the Python work between them,
a scheduling delay on a loaded machine included: under bench.api's load about 8 of 32 updates in progress
waited on it.

Each entry's ``hash`` is SHA-256 over the canonical JSON (sorted keys, no whitespace, UTF-8) of its
fields and ``prev_hash``: AWS CloudTrail's log file integrity validation chains digest files the same
way, per hour rather than per entry.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, func, insert, select, update
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
class PendingEntry:
    """An entry not yet chained: its ``seq``, ``prev_hash`` and ``hash`` are given when it is appended."""

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
    session.info.setdefault(_PENDING, []).append(pending_entry(
        actor=actor, action=action, target_type=target_type, target_id=target_id, tenant_id=tenant_id, detail=detail))


def pending_entry(*, actor: str, action: str, target_type: str, target_id: str | int, tenant_id: str | None,
                  detail: dict[str, Any] | None, at: datetime | None = None) -> PendingEntry:
    """An entry to append (:func:`record` queues one on a session; :func:`send_appends` sends them in a pipeline),
    its ``detail`` normalised to what its canonical JSON reads back as."""
    return PendingEntry(at=at or utcnow(), actor=actor, action=action, target_type=target_type,
                        target_id=str(target_id), tenant_id=tenant_id, detail=json.loads(canonical_json(detail or {})))


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return
    pending: list[PendingEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the change itself first: its locks before the head's
    connection = session.connection()
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql" and driver is not None and not driver.autocommit:
        _appends[connection] = pending  # sent with the COMMIT (_append_with_commit)
        _expire_head(session)
        return
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
    # Plain statements, not ORM objects: the entries are never read back in the transaction.
    session.execute(insert(AuditEntry).values(rows))
    session.execute(update(AuditHead).where(AuditHead.id == _HEAD_ID).values(hash=prev_hash))
    _expire_head(session)


def _expire_head(session: Session) -> None:
    stale = session.identity_map.get(identity_key(AuditHead, (_HEAD_ID,)))
    if stale is not None:  # read earlier in the session: what it holds is no longer the head
        session.expire(stale)


#: PostgreSQL: the entries a connection's transaction appends when it commits.
_appends: weakref.WeakKeyDictionary[Connection, list[PendingEntry]] = weakref.WeakKeyDictionary()

#: The head claimed for ``n`` entries (the row made on the first append), locked until COMMIT.
_CLAIM_SQL = (
    "INSERT INTO audit_head (id, seq, hash) VALUES (%(head)s, %(n)s, %(genesis)s)"
    " ON CONFLICT (id) DO UPDATE SET seq = audit_head.seq + %(n)s"
)
#: The entries after the head claimed above, each hash computed as :func:`entry_hash` computes it, from the
#: canonical JSON around its ``prev_hash`` and ``seq`` (:func:`_hash_parts`); the head's hash set to the last.
_APPEND_SQL = """
WITH RECURSIVE pending AS (
    SELECT * FROM unnest(%(at)s::timestamptz[], %(actor)s::text[], %(action)s::text[], %(target_type)s::text[],
                         %(target_id)s::text[], %(tenant_id)s::text[], %(detail)s::text[], %(before)s::text[],
                         %(after)s::text[])
        WITH ORDINALITY AS p(at, actor, action, target_type, target_id, tenant_id, detail, before, after, i)
), chain(i, seq, prev_hash, hash) AS (
    SELECT 0::bigint, seq - %(n)s::integer, NULL::text, hash::text FROM audit_head WHERE id = %(head)s
    UNION ALL
    SELECT c.i + 1, c.seq + 1, c.hash,
           encode(sha256(convert_to(p.before || c.hash || '","seq":' || (c.seq + 1) || p.after, 'UTF8')), 'hex')
    FROM chain AS c JOIN pending AS p ON p.i = c.i + 1
), entries AS (
    INSERT INTO audit_log (seq, at, actor, action, target_type, target_id, tenant_id, detail, prev_hash, hash)
    SELECT c.seq, p.at, p.actor, p.action, p.target_type, p.target_id, p.tenant_id, p.detail::json, c.prev_hash,
           c.hash
    FROM chain AS c JOIN pending AS p ON p.i = c.i
    RETURNING seq, hash
)
UPDATE audit_head SET hash = (SELECT hash FROM entries ORDER BY seq DESC LIMIT 1) WHERE id = %(head)s
"""


def _hash_parts(entry: PendingEntry) -> tuple[str, str]:
    """The entry's canonical JSON (as :func:`entry_hash` makes it) before its ``prev_hash`` value and after its
    ``seq``: the two are adjacent in key order, so the JSON is ``before + prev_hash + '","seq":' + seq + after``."""
    text = canonical_json({
        "seq": 0, "at": entry.at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": entry.actor,
        "action": entry.action, "target_type": entry.target_type, "target_id": entry.target_id,
        "tenant_id": entry.tenant_id, "detail": entry.detail, "prev_hash": "",
    })
    # The last one: the detail (before it in key order) may hold a key of that name, never the keys after it.
    cut = text.rindex(',"prev_hash":"') + len(',"prev_hash":"')
    middle = '","seq":0'
    if not text.startswith(middle, cut):
        raise AssertionError("canonical JSON keys out of order")
    return text[:cut], text[cut + len(middle):]


@event.listens_for(Engine, "commit")
def _append_with_commit(connection: Connection) -> None:
    """PostgreSQL: send the head's claim, the transaction's entries and COMMIT in one pipeline, so the head's lock is
    held for the server's work alone. SQLAlchemy's own COMMIT after this finds the transaction ended (a no-op)."""
    pending = _appends.pop(connection, None)
    if not pending:
        return
    driver: Any = connection.connection.driver_connection
    with driver.pipeline():
        send_appends(driver, pending)
        driver.commit()


def send_appends(driver: Any, pending: list[PendingEntry]) -> None:
    """PostgreSQL: send the head's claim and ``pending`` chained after it on ``driver`` (a psycopg connection in a
    transaction, in pipeline mode), last before the transaction's COMMIT: the head's lock is taken there and held
    until the COMMIT that the caller sends in the same pipeline."""
    parts = [_hash_parts(entry) for entry in pending]
    params: dict[str, Any] = {
        "head": _HEAD_ID, "n": len(pending), "genesis": GENESIS_HASH,
        "at": [entry.at for entry in pending], "actor": [entry.actor for entry in pending],
        "action": [entry.action for entry in pending], "target_type": [entry.target_type for entry in pending],
        "target_id": [entry.target_id for entry in pending], "tenant_id": [entry.tenant_id for entry in pending],
        "detail": [canonical_json(entry.detail) for entry in pending],
        "before": [before for before, _ in parts], "after": [after for _, after in parts],
    }
    driver.execute(_CLAIM_SQL, params)
    driver.execute(_APPEND_SQL, params)


@event.listens_for(Engine, "rollback")
def _forget_appends(connection: Connection) -> None:
    _appends.pop(connection, None)


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
