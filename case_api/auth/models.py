"""API keys, roles and the authenticated principal."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.db import Base, UTCDateTime, utcnow
from case_api.tenants.models import Tenant, TenantId


class Role(enum.StrEnum):
    ADMIN = "admin"
    SOC_LEAD = "soc_lead"
    SOC_ANALYST = "soc_analyst"  # city SOC analyst: every tenant
    TENANT_RESPONDER = "tenant_responder"  # own tenant only, may work its cases
    TENANT_VIEWER = "tenant_viewer"  # own tenant only, read-only
    RULE_AUTHOR = "rule_author"
    SERVICE = "service"  # collectors and correlator: post alerts for any tenant

    @property
    def is_tenant_bound(self) -> bool:
        return self in TENANT_ROLES


TENANT_ROLES = frozenset({Role.TENANT_RESPONDER, Role.TENANT_VIEWER})
CITY_SOC_ROLES = frozenset({Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST})


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey(Tenant.id), nullable=True)
    # sha256 of the secret; the secret itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key on every request."""

    key_id: int
    name: str
    role: Role
    tenant_id: str | None

    @property
    def actor(self) -> str:
        """Name written to the audit trail."""
        return self.name


class ApiKeyIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role
    tenant_id: TenantId | None = None

    @model_validator(mode="after")
    def _tenant_matches_role(self) -> ApiKeyIn:
        if self.role.is_tenant_bound and self.tenant_id is None:
            raise ValueError(f"role {self.role.value!r} is bound to one tenant: give tenant_id")
        if not self.role.is_tenant_bound and self.tenant_id is not None:
            raise ValueError(f"role {self.role.value!r} works across tenants: leave tenant_id out")
        return self


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    tenant_id: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The API key. Shown once; store it now.")
