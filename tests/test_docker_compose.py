"""docker/: the compose file and the image's Dockerfile, checked for structure (no Docker engine runs here, see
docker/README.md): the services the production shape needs, security on, no secret written into the file,
a multi-stage image that runs as a non-root user with a health check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|ENCRYPTIONKEY|DATABASE_URL", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{[A-Z_]+(:?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DOCKER / "compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def test_the_production_shape_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"elasticsearch", "kibana", "postgres", "citysoc", "spark-master", "spark-worker"} <= set(services)
    assert services["elasticsearch"]["image"].split(":")[-1].startswith("9.")
    assert services["kibana"]["image"].split(":")[-1] == services["elasticsearch"]["image"].split(":")[-1]
    assert services["citysoc"]["command"][:2] == ["soc", "run"]
    assert services["citysoc"]["build"]["dockerfile"] == "docker/Dockerfile"
    env = environment(services["citysoc"])
    assert env["SOC_EVENT_STORE"] == "elasticsearch" and env["SOC_ES_URL"].startswith("https://")
    assert env["SOC_SPARK_MASTER"] == "spark://spark-master:7077"
    assert env["SOC_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "org.apache.spark.deploy.master.Master" in services["spark-master"]["command"]
    assert "spark://spark-master:7077" in services["spark-worker"]["command"]


def test_elasticsearch_runs_with_security_and_tls(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["elasticsearch"])
    assert env["xpack.security.enabled"] == "true"
    assert env["xpack.security.http.ssl.enabled"] == "true"
    assert env["discovery.type"] == "single-node"


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.search(value), f"{name}: {key} holds a value, not ${{VAR}} from the environment"
                stripped = INTERPOLATION.sub("", value)
                assert not re.search(r":[^@/:]+@", stripped), f"{name}: {key} has a password written in"


def test_only_the_intake_listens_beyond_loopback(compose: dict[str, Any]) -> None:
    intake = {"5514", "5514/udp", "6514", "2514", "8514"}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                assert name == "citysoc" and str(port).split(":", 1)[1] in intake, f"{name} publishes {port}"


def test_the_image_is_multi_stage_non_root_and_checks_its_health() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", dockerfile, flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2
    assert "COPY --from=build" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK\s", dockerfile, flags=re.MULTILINE)
    assert "/api/v1/health" in dockerfile
