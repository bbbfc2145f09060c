"""Settings of the `soc` CLI and the jobs it runs (env prefix `SOC_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the embedded default writes lives under `home` ($SOC_HOME, default ./.soc)."""

    model_config = SettingsConfigDict(env_prefix="SOC_", extra="ignore")

    home: Path = Path(".soc")
    # Case API: unset means "run the API in-process on the embedded database".
    api_url: str | None = None
    api_key: str | None = None
    database_url: str | None = None
    # Spark
    spark_master: str = "local[2]"
    spark_shuffle_partitions: int = 2
    spark_driver_memory: str = "2g"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "WARNING"

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def events_dir(self) -> Path:
        return self.lake_dir / "events"

    @property
    def alerts_dir(self) -> Path:
        return self.lake_dir / "alerts"

    @property
    def deadletter_dir(self) -> Path:
        return self.home / "deadletter"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    @property
    def detect_state_file(self) -> Path:
        """Where `soc detect --every` keeps the end of its last finished run."""
        return self.home / "detect-state.json"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
