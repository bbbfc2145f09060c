"""Tenants: the member organisations whose logs the SOC watches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.db import Base, UTCDateTime, utcnow

Criticality = Literal["low", "medium", "high", "critical"]

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"

TenantId = Annotated[
    str,
    Field(
        pattern=TENANT_ID_PATTERN,
        description="Tenant slug: lower-case letters, digits and '-', 2-63 characters",
        examples=["northgate-hospital"],
    ),
]


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: How much the member's assets matter (low, medium, high, critical): with a case's severity it gives
    #: the case's priority (a hospital's clinical systems rank above a small charity's laptops).
    asset_criticality: Mapped[str] = mapped_column(String(16), default="medium", server_default="medium")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    id: TenantId
    name: str = Field(min_length=1, max_length=200)
    asset_criticality: Criticality = "medium"


class TenantPatch(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    asset_criticality: Criticality | None = None


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    asset_criticality: Criticality
    created_at: datetime
