"""Settings of the `soc` CLI and the jobs it runs (env prefix `SOC_`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from citysoc.files import ensure_private_dir


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
    # The intake as partners reach it (what `soc sources add` prints): the collector's public name and ports,
    # and the CA certificate its TLS certificate chains to. Ports above 1024, so `soc collect` needs no root.
    collect_host: str = Field(default_factory=socket.getfqdn)
    collect_syslog_udp_port: int = 5514
    collect_syslog_tcp_port: int = 5514
    collect_syslog_tls_port: int = 6514
    collect_relp_port: int = 2514
    collect_http_port: int = 8514
    collect_ca_file: str | None = None
    # Where the intake fetches Google's certificates to check Pub/Sub push ID tokens (a mirror, or a test's server).
    google_id_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    # How often the intake merges the lake's small files while its spool is idle (seconds; 0 turns it off).
    compact_every_seconds: float = 300.0
    # The GeoIP database (`soc geoip update` installs it; ingest enriches source.ip from it). Unset: $SOC_HOME/geoip.
    geoip_dir: Path | None = None
    # Event store: the embedded Parquet lake, or Elasticsearch data streams (`citysoc.store.elastic`).
    event_store: Literal["parquet", "elasticsearch"] = "parquet"
    # Elasticsearch (used when event_store is elasticsearch): the cluster, and how to authenticate to it
    # (an API key, else user and password); the CA file its TLS certificate chains to.
    es_url: str | None = None
    es_api_key: str | None = None
    es_username: str | None = None
    es_password: str | None = None
    es_ca_file: str | None = None
    # Spark's reader: one partition per slice of the point in time, and documents per search page.
    es_read_slices: int = 2
    es_page_size: int = 2000

    def collect_port(self, kind: str) -> int | None:
        """The public port of the listener a source of `kind` sends to (None: a kind without a listener)."""
        return {"syslog-udp": self.collect_syslog_udp_port, "syslog-tcp": self.collect_syslog_tcp_port,
                "syslog-tls": self.collect_syslog_tls_port, "syslog-relp": self.collect_relp_port,
                "http": self.collect_http_port}.get(kind)

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
    def health_dir(self) -> Path:
        """Data health per source, written by the intake (`citysoc.health.HealthStore`)."""
        return self.home / "health"

    @property
    def geoip_path(self) -> Path:
        return self.geoip_dir if self.geoip_dir is not None else self.home / "geoip"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def pull_dir(self) -> Path:
        """The pulls' own spool (`spool/`) and checkpoints (`checkpoints/`): `soc pull` runs beside `soc collect`."""
        return self.home / "pull"

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    @property
    def detect_checkpoint_file(self) -> Path:
        """Where continuous detection keeps the arrival mark of its last finished cycle."""
        return self.home / "detect-checkpoint.json"

    def ensure_home(self) -> Path:
        """Create the data home, owner-only (0700), if it does not exist yet and return it."""
        return ensure_private_dir(self.home)
