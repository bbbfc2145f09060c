"""API keys, roles and the authenticated principal."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

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


#: A user's id: their login, unique and never reused or renamed, so the audit trail's actor stays theirs.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"

UserId = Annotated[
    str,
    Field(
        pattern=USER_ID_PATTERN,
        description="User id (login): letters, digits and . _ @ + -, up to 100 characters",
        examples=["ann.analyst"],
    ),
]


class User(Base):
    """A person or a service account. Keys belong to a user; the role and tenant are the user's."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey(Tenant.id), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: A disabled user's keys and tokens are refused; the user stays, so the audit trail keeps its actor.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: A label for the key (e.g. "laptop", "collector-03"); who it acts as is ``user_id``.
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ForeignKey(User.id), index=True)
    # sha256 of the secret; the secret itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When the key last authenticated, to within :data:`case_api.auth.service.LAST_USE_RESOLUTION`.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    # The owner's role and tenant, read with the key (also usable in queries: ``select(ApiKey.role)``).
    role: Mapped[str] = column_property(
        select(User.role).where(User.id == user_id).correlate_except(User).scalar_subquery().label("role")
    )
    tenant_id: Mapped[str | None] = column_property(
        select(User.tenant_id).where(User.id == user_id).correlate_except(User).scalar_subquery().label("tenant_id")
    )


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key or bearer token on every request."""

    user_id: str
    role: Role
    tenant_id: str | None
    #: The API key used, or ``None`` for a bearer token from the identity provider.
    key_id: int | None = None

    @property
    def actor(self) -> str:
        """Written to the audit trail: the user's id, whichever of their keys or tokens was used."""
        return self.user_id


def _tenant_matches_role(role: Role | None, tenant_id: str | None) -> None:
    if role is None:
        return
    if role.is_tenant_bound and tenant_id is None:
        raise ValueError(f"role {role.value!r} is bound to one tenant: give tenant_id")
    if not role.is_tenant_bound and tenant_id is not None:
        raise ValueError(f"role {role.value!r} works across tenants: leave tenant_id out")


class UserIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    id: UserId
    display_name: str | None = Field(default=None, min_length=1, max_length=200, description="Defaults to the id")
    role: Role
    tenant_id: TenantId | None = None

    @model_validator(mode="after")
    def _check(self) -> UserIn:
        _tenant_matches_role(self.role, self.tenant_id)
        return self


class UserPatch(BoundedInput):
    """A change to a user; a field left out stays. ``role`` and ``tenant_id`` change together."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    tenant_id: TenantId | None = None
    disabled: bool | None = Field(default=None, description="true refuses the user's keys and tokens")

    @model_validator(mode="after")
    def _check(self) -> UserPatch:
        if "tenant_id" in self.model_fields_set and self.role is None:
            raise ValueError("give the role with tenant_id: they change together")
        _tenant_matches_role(self.role, self.tenant_id)
        return self


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str
    role: Role
    tenant_id: str | None
    created_at: datetime
    disabled_at: datetime | None
    last_used_at: datetime | None = Field(default=None, description="Last use of any of the user's keys")


class ApiKeyIn(BoundedInput):
    """A key for an existing user (``user_id``), or, in one step, a user named ``name`` with ``role``
    (and ``tenant_id``) and a key for them: the user is created unless it exists with that role."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Label of the key (and the user id in one step)")
    user_id: UserId | None = Field(default=None, description="The user the key acts as")
    role: Role | None = Field(default=None, description="One step only: the role of the user made")
    tenant_id: TenantId | None = None
    expires_at: datetime | None = Field(default=None, description="After this the key is refused (default: never)")

    @model_validator(mode="after")
    def _owner(self) -> ApiKeyIn:
        if self.user_id is not None:
            if self.role is not None or self.tenant_id is not None:
                raise ValueError("a key for user_id takes the user's role and tenant: leave role and tenant_id out")
        elif self.role is None:
            raise ValueError("give user_id (an existing user), or role to make a user named `name` with the key")
        _tenant_matches_role(self.role, self.tenant_id)
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            self.expires_at = self.expires_at.replace(tzinfo=UTC)
        return self


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    user_id: str
    role: Role
    tenant_id: str | None
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The API key. Shown once; store it now.")
