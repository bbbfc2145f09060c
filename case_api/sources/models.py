"""Sources: one row per log source a tenant has onboarded, how its senders are recognised, and its audit trail."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from case_api.bounds import BoundedInput
from case_api.db import Base, UTCDateTime, utcnow
from case_api.health.models import SourceHealthOut
from case_api.sources.kinds import KINDS
from case_api.tenants.models import Tenant, TenantId

SourceKindName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description=f"How records arrive: {', '.join(KINDS)}",
          examples=["syslog-tls"]),
]
DatasetName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", examples=["system.auth"])]
NetworkText = Annotated[str, Field(min_length=2, max_length=64, examples=["192.0.2.0/24"])]
PullSettingName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["bucket"])]
PullSettingValue = Annotated[str, Field(max_length=2000)] | Annotated[
    list[Annotated[str, Field(max_length=200)]], Field(max_length=20)]
CloudAccount = Annotated[str, Field(pattern=r"^[0-9]{12}$", description="AWS account id (12 digits)",
                                    examples=["111122223333"])]


def _fingerprint(value: str) -> str:
    """`AB:CD:...` (openssl's form) or plain hex, as lower-case hex without separators."""
    text = value.replace(":", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError("a certificate fingerprint is the SHA-256 of the DER certificate: 64 hex digits, "
                         "e.g. from `openssl x509 -in client.pem -noout -fingerprint -sha256`")
    return text


Fingerprint = Annotated[str, AfterValidator(_fingerprint)]


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_sources_tenant_id_name"),
        # Ids are never reused (SQLite would otherwise hand a deleted source's id to the next one), so data
        # health and the audit trail, which keep source ids, never attach to a later source.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    datasets: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    parser: Mapped[str] = mapped_column(String(64))
    # Normalised CIDR texts; senders on these networks (per the kind's transports) belong to this source.
    networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    cloud_accounts: Mapped[list[str]] = mapped_column(JSON, default=list)
    # SHA-256 of the bearer token; the token itself is shown once when issued and never stored.
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    certificate_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # A pulled source's settings (kinds.PULL_KINDS): where to pull from and references to its credentials
    # (`env:NAME`, `file:/path`), never a secret; an http source's Pub/Sub push identity (pull.PUSH_SETTINGS).
    # None for the other kinds.
    pull: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    @property
    def pull_settings(self) -> dict[str, Any]:
        return dict(self.pull or {})

    @property
    def transports(self) -> list[str]:
        kind = KINDS.get(self.kind)
        return sorted(kind.transports) if kind else []

    @property
    def has_token(self) -> bool:
        return self.token_sha256 is not None


class SourceEvent(Base):
    """One line of the sources' audit trail. Rows are only ever inserted, and outlive the source they
    describe (so `source_id` is not a foreign key). Tokens never appear in `detail`."""

    __tablename__ = "source_events"
    __table_args__ = (Index("ix_source_events_tenant_source", "tenant_id", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    tenant_id: Mapped[str] = mapped_column(ForeignKey(Tenant.id))
    source_id: Mapped[int] = mapped_column(Integer)
    source_name: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(100))
    actor_key_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SourceIn(BoundedInput):
    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantId
    kind: SourceKindName
    name: str = Field(min_length=1, max_length=200, description="Unique within the tenant, e.g. web-01 auth.log")
    datasets: list[DatasetName] = Field(default_factory=list, max_length=50,
                                        description="Datasets the source feeds (default: what its parser writes)")
    parser: str | None = Field(default=None, max_length=64,
                               description="Parser its records go to (default: the kind's; an http source must say)")
    networks: list[NetworkText] = Field(default_factory=list, max_length=100,
                                        description="Sender networks (CIDR; a bare address is one host)")
    cloud_accounts: list[CloudAccount] = Field(default_factory=list, max_length=100,
                                               description="Cloud accounts its records may name (CloudTrail)")
    certificate_sha256: Fingerprint | None = Field(default=None, description="TLS client certificate fingerprint")
    pull: dict[PullSettingName, PullSettingValue] = Field(
        default_factory=dict, max_length=20,
        description="A pulled kind's settings (see the kind's list); credentials only as references, env:NAME or "
                    "file:/path, never the secret itself. An http source: its Pub/Sub push identity, "
                    "push_service_account and push_audience")


class SourcePatch(BoundedInput):
    """What may change on a source; a field left out stays. Lists replace the current ones."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[DatasetName] | None = Field(default=None, max_length=50)
    networks: list[NetworkText] | None = Field(default=None, max_length=100)
    cloud_accounts: list[CloudAccount] | None = Field(default=None, max_length=100)
    certificate_sha256: Fingerprint | None = None


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    kind: str
    name: str
    parser: str
    datasets: list[str]
    transports: list[str]
    networks: list[str]
    cloud_accounts: list[str]
    has_token: bool
    certificate_sha256: str | None
    pull: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("pull_settings", "pull"),
                                 description="A pulled source's settings; credentials appear as references only")
    created_at: datetime
    health: SourceHealthOut | None = Field(default=None, description="Data health, as the intake last recorded it")


class SourceCreated(SourceOut):
    token: str | None = Field(description="The HTTP bearer token of an http source. Shown once; store it now.")


class SourceAccessOut(BaseModel):
    """What the intake needs to recognise a source's senders: digests and fingerprints, never tokens."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    name: str
    kind: str
    parser: str
    transports: list[str]
    networks: list[str]
    cloud_accounts: list[str]
    token_sha256: str | None
    certificate_sha256: str | None
    pull: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("pull_settings", "pull"))


class SourceEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    tenant_id: str
    source_id: int
    source_name: str
    actor: str
    actor_key_id: int
    action: str
    detail: dict[str, Any]
