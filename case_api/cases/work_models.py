"""What analysts add to a case while working it: comments, tasks, observables; and the requests that change it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import MAX_ID, BoundedInput
from case_api.cases.models import Case, CaseStatus, Resolution
from case_api.db import Base, UTCDateTime, utcnow

MAX_COMMENT = 10_000
#: Cases one bulk request may change.
MAX_BULK = 500

CaseId = Annotated[int, Field(ge=1, le=MAX_ID)]


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


class ObservableKind(enum.StrEnum):
    IP = "ip"
    DOMAIN = "domain"
    USER = "user"
    HOST = "host"
    HASH = "hash"
    CLOUD_ACCOUNT = "cloud_account"


class Tlp(enum.StrEnum):
    """Traffic Light Protocol 2.0: how far an observable may be shared."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


class CaseComment(Base):
    __tablename__ = "case_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)


class CaseTask(Base):
    """A step to do on a case: from a matching playbook (``playbook_id`` and the CACAO step id) or added by hand."""

    __tablename__ = "case_tasks"
    __table_args__ = (UniqueConstraint("case_id", "playbook_id", "step_id", name="uq_case_tasks_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), index=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN.value)
    playbook_id: Mapped[str] = mapped_column(String(200), default="")
    step_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CaseObservable(Base):
    """An indicator the case is about, with how far it may be shared (TLP)."""

    __tablename__ = "case_observables"
    __table_args__ = (
        UniqueConstraint("case_id", "kind", "value", name="uq_case_observables_value"),
        Index("ix_case_observables_lookup", "tenant_id", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey(Case.id), index=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(1024))
    tlp: Mapped[str] = mapped_column(String(16), default=Tlp.AMBER.value)
    source: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CommentIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_COMMENT)


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    author: str
    body: str


class TaskIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)


class TaskPatch(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    status: TaskStatus


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: TaskStatus
    playbook_id: str = Field(description="The CACAO playbook the task comes from; empty for one added by hand")
    step_id: str
    created_at: datetime
    done_at: datetime | None
    done_by: str | None


class ObservableIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    kind: ObservableKind
    value: str = Field(min_length=1, max_length=1024)
    tlp: Tlp = Tlp.AMBER


class ObservableOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ObservableKind
    value: str
    tlp: Tlp
    source: str = Field(description="'alert' when taken from the case's alerts, else who added it")
    created_at: datetime


class MergeIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    sources: list[CaseId] = Field(min_length=1, max_length=MAX_BULK, description="Cases merged into this one")


class BulkAction(enum.StrEnum):
    ASSIGN = "assign"
    CLOSE = "close"
    MERGE = "merge"


class BulkIn(BoundedInput):
    """One action on many cases: ``assign`` (``assignee``), ``close`` (``resolution``), ``merge`` (``into``)."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    case_ids: list[CaseId] = Field(min_length=1, max_length=MAX_BULK)
    assignee: str | None = Field(default=None, max_length=200)
    resolution: Resolution | None = None
    comment: str | None = Field(default=None, min_length=1, max_length=MAX_COMMENT)
    into: CaseId | None = None

    @model_validator(mode="after")
    def _arguments(self) -> BulkIn:
        if self.action is BulkAction.CLOSE and self.resolution is None:
            raise ValueError("close needs a resolution: true_positive, benign, false_positive or duplicate")
        if self.action is BulkAction.MERGE and self.into is None:
            raise ValueError("merge needs `into`: the case the others are merged into")
        if self.action is BulkAction.ASSIGN and "assignee" not in self.model_fields_set:
            raise ValueError("assign needs `assignee` (null unassigns)")
        return self


class BulkResult(BaseModel):
    case_id: int
    ok: bool
    status: CaseStatus | None = None
    detail: str = ""
