"""Settings of the case API deployable (environment prefix ``SOC_``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from case_api.auth.tokens import DEFAULT_ALGORITHMS, OidcConfig
from case_api.bounds import MAX_BODY_BYTES
from case_api.campaigns.rules import DEFAULT_CAMPAIGN_RULES
from case_api.tenants.registered import EMBEDDED_DATABASE
from citysoc.files import ensure_private_dir
from citysoc.schedule import parse_duration


class Settings(BaseSettings):
    """Where the case API keeps its data.

    ``SOC_HOME`` is the data home shared with the rest of CitySOC; ``SOC_DATABASE_URL`` overrides
    the embedded SQLite database (e.g. ``postgresql+psycopg://soc@db/citysoc``). The data-health and
    dead-letter stores the intake writes are read from ``SOC_HOME`` (see the README).
    """

    model_config = SettingsConfigDict(env_prefix="SOC_", extra="ignore")

    home: Path = Path(".soc")
    database_url: str | None = None
    #: Where evidence (events by id) is read: the lake under ``SOC_HOME``, or Elasticsearch (``SOC_ES_*``).
    event_store: Literal["parquet", "elasticsearch"] = "parquet"
    #: Alerts sharing a value of one of these entity fields join one case (a rule's `citysoc: group_by` wins).
    case_group_by: tuple[str, ...] = ("user.name", "source.ip")
    #: How far apart in event time alerts of one case may be (a rule's `citysoc: window` wins); bounds risk too.
    case_window: timedelta = timedelta(hours=24)
    #: Entity risk (sum of its alerts' level scores within the window) that opens a case.
    risk_threshold: int = Field(default=50, ge=1)
    #: Campaign rule files or folders (`*.yaml`); see `case_api/campaigns/rules.py`.
    campaign_rules: tuple[Path, ...] = (DEFAULT_CAMPAIGN_RULES,)
    #: Largest request body accepted (``SOC_MAX_BODY_BYTES``); larger ones are answered 413.
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    #: OpenID Connect bearer tokens (see ``case_api/auth/tokens.py``): off unless the issuer is set.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_user_claim: str = "preferred_username"
    oidc_role_claim: str = "citysoc_role"
    oidc_tenant_claim: str = "citysoc_tenant"
    oidc_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    oidc_leeway: int = Field(default=30, ge=0, le=600)
    #: Console sign-in with the same provider (``case_api/console/oidc.py``): on when the client id is set too.
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    #: The button's "Sign in with ..." name.
    oidc_provider_name: str = "single sign-on"
    #: The console's callback as registered at the provider; default: derived from the request.
    oidc_redirect_uri: str | None = None

    # Notifications (case_api/notifications): the SOC's own destinations, the SMTP relay, the outbox drainer.
    #: SOC addresses told of every member's new high/critical cases and SLA breaches (a JSON list).
    notify_soc_emails: tuple[str, ...] = ()
    #: SOC webhook (Standard Webhooks) and its `whsec_...` signing secret.
    notify_soc_webhook_url: str | None = None
    notify_soc_webhook_secret: SecretStr | None = None
    #: Seconds between outbox drains by the API's background thread (0 turns the thread off).
    notify_interval: float = Field(default=10.0, ge=0)
    #: Attempts per notification, and the wait after the first failure (doubling, at most an hour).
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_backoff: timedelta = timedelta(seconds=30)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "citysoc@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    @field_validator("case_window", "notify_backoff", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """`SOC_CASE_WINDOW=2h` like a rule's `citysoc: {window: 2h}`; seconds and ISO 8601 work too."""
        if isinstance(value, str) and value.strip().isdigit():
            return timedelta(seconds=int(value))
        if isinstance(value, str) and value.strip() and value.strip()[-1] in "smhd":
            return parse_duration(value)
        return value

    def oidc(self) -> OidcConfig | None:
        """The bearer-token configuration, or ``None`` when ``SOC_OIDC_ISSUER`` is not set."""
        if not self.oidc_issuer:
            return None
        if not self.oidc_audience:
            raise ValueError("SOC_OIDC_ISSUER is set but SOC_OIDC_AUDIENCE is not: give the audience tokens must name")
        return OidcConfig(issuer=self.oidc_issuer, audience=self.oidc_audience, jwks_url=self.oidc_jwks_url,
                          jwks_file=self.oidc_jwks_file, user_claim=self.oidc_user_claim,
                          role_claim=self.oidc_role_claim, tenant_claim=self.oidc_tenant_claim,
                          algorithms=self.oidc_algorithms, leeway_seconds=self.oidc_leeway)

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / EMBEDDED_DATABASE}"

    @property
    def secrets_path(self) -> Path:
        """File holding the generated bootstrap API keys (mode 600)."""
        return self.home / "secrets.json"

    @property
    def health_dir(self) -> Path:
        """Where the intake keeps data health per source (`citysoc.health.HealthStore`)."""
        return self.home / "health"

    @property
    def events_dir(self) -> Path:
        """The event store the intake writes (the Parquet lake's events, as `citysoc.settings` places them)."""
        return self.home / "lake" / "events"

    @property
    def deadletter_dir(self) -> Path:
        """Where the collectors keep the records they could not parse (`citysoc.deadletter.DeadLetterStore`)."""
        return self.home / "deadletter"

    def ensure_home(self) -> Path:
        """Create the data home (owner-only, 0700) if it does not exist yet and return it."""
        return ensure_private_dir(self.home)

