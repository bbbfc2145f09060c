"""Settings of the case API deployable (environment prefix ``SOC_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the case API keeps its data.

    ``SOC_HOME`` is the data home shared with the rest of CitySOC; ``SOC_DATABASE_URL`` overrides
    the embedded SQLite database (e.g. ``postgresql+psycopg://soc@db/citysoc``). The data-health and
    dead-letter stores the intake writes are read from ``SOC_HOME`` (see the README).
    """

    model_config = SettingsConfigDict(env_prefix="SOC_", extra="ignore")

    home: Path = Path(".soc")
    database_url: str | None = None

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'cases.db'}"

    @property
    def secrets_path(self) -> Path:
        """File holding the generated bootstrap API keys (mode 600)."""
        return self.home / "secrets.json"

    @property
    def health_dir(self) -> Path:
        """Where the intake keeps data health per source (`citysoc.health.HealthStore`)."""
        return self.home / "health"

    @property
    def deadletter_dir(self) -> Path:
        """Where the collectors keep the records they could not parse (`citysoc.deadletter.DeadLetterStore`)."""
        return self.home / "deadletter"

    def ensure_home(self) -> Path:
        """Create the data home if it does not exist yet and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
