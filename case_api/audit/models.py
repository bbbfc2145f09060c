"""The deployment's audit log: every change, by whom, hash-chained so that an edit or a deletion shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.db import Base, UTCDateTime

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64


class AuditEntry(Base):
    """One change. Rows are only ever inserted; ``hash`` covers every other column and ``prev_hash``,
    the ``hash`` of the entry before (``seq - 1``), so changing, removing or reordering one breaks the chain."""

    __tablename__ = "audit_log"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Position in the chain: 1, 2, 3, ... without gaps (a gap is a deleted entry).
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The acting user's id (see ``case_api.auth.models.User``).
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(200))
    #: The tenant whose data changed, if any (not a foreign key: the log outlives what it describes).
    tenant_id: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the newest entry's ``seq`` and ``hash``. Appends update it first, which serialises them
    (PostgreSQL's row lock, SQLite's write lock) and lets the verifier see a truncated tail."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    tenant_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerification(BaseModel):
    ok: bool
    entries: int = Field(description="Entries checked")
    head_seq: int = Field(description="The chain head's position (0: empty)")
    head_hash: str = Field(description="The newest entry's hash: keep it elsewhere to detect a rewritten chain")
    broken_id: int | None = Field(default=None, description="Id of the first entry that breaks the chain")
    broken_seq: int | None = None
    reason: str | None = None
