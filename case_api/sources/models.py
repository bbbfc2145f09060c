"""Sources: one row per log source a tenant has onboarded, with the datasets it feeds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant, TenantId

SourceKind = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Collector kind, e.g. syslog, aws.cloudtrail, auditd",
          examples=["syslog"]),
]
DatasetName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", examples=["system.auth"])]


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_sources_tenant_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    datasets: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantId
    kind: SourceKind
    name: str = Field(min_length=1, max_length=200, description="Unique within the tenant, e.g. web-01 auth.log")
    datasets: list[DatasetName] = Field(default_factory=list, max_length=50,
                                        description="Datasets the source feeds (event.dataset values)")


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    kind: str
    name: str
    datasets: list[str]
    created_at: datetime
