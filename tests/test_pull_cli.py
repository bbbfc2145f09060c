"""`soc sources add` for a pulled kind prints what the member grants and keeps only credential references;
`soc pull --once` pulls it (from a local server speaking GitHub's audit log API, and from the local Pub/Sub
Subscriber server through PUBSUB_EMULATOR_HOST, and from the local AMQP server of tests/collectors/eventhub_server.py
through an emulator connection string) into the lake, and a second run stores nothing new."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from citysoc.cli.render import recognised_by
from citysoc.store import ParquetEventStore
from tests.collectors.pull_servers import GitHubAuditLog, github_entry
from tests.store.lake_helpers import stored_ids
from tests.test_sources_cli import NG, soc

T = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def github() -> Iterator[GitHubAuditLog]:
    log = GitHubAuditLog("northgate", "gh-secret-value")
    log.entries = [github_entry(number, T + number * 1000) for number in range(120)]
    with log.server:
        yield log


def test_a_github_source_is_added_then_pulled_into_the_lake_once(tmp_path: Path, github: GitHubAuditLog) -> None:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG).returncode == 0
    added = soc(home, "sources", "add", "--tenant", NG, "--kind", "github", "github-audit",
                "--setting", "org=northgate", "--setting", "token=env:NORTHGATE_GH_TOKEN",
                "--setting", f"api_url={github.server.url}", "--setting", "since=2026-12-01T00:00:00Z")
    assert added.returncode == 0, added.stderr
    assert "read:audit_log" in added.stdout and "token=env:NORTHGATE_GH_TOKEN" in added.stdout
    assert "soc pull --once --source" in added.stdout
    listed = soc(home, "sources", "list", "--json")
    [entry] = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert entry["pull"]["token"] == "env:NORTHGATE_GH_TOKEN"
    assert recognised_by(entry) == "pulled (soc pull) org northgate"  # the `soc sources list` column

    unset = soc(home, "pull", "--once")
    assert unset.returncode == 1 and "NORTHGATE_GH_TOKEN is not set" in unset.stderr
    pulled = soc(home, "pull", "--once", NORTHGATE_GH_TOKEN="gh-secret-value")
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 120 records" in pulled.stderr and "gh-secret-value" not in pulled.stdout + pulled.stderr
    store = ParquetEventStore(home / "lake" / "events")
    assert store.stored(tenant=NG, dataset="github.audit") == 120
    again = soc(home, "pull", "--once", NORTHGATE_GH_TOKEN="gh-secret-value")
    assert again.returncode == 0 and "pulled 0 records" in again.stderr
    assert store.stored(tenant=NG, dataset="github.audit") == 120


def test_a_literal_secret_is_refused_and_not_repeated(tmp_path: Path) -> None:
    home = tmp_path / "soc"
    assert soc(home, "tenants", "add", NG).returncode == 0
    refused = soc(home, "sources", "add", "--tenant", NG, "--kind", "okta", "okta", "--setting",
                  "domain=https://northgate.okta.com", "--setting", "token=00aPASTEDSECRET")
    assert refused.returncode == 2 and "token is a credential" in refused.stderr
    assert "PASTEDSECRET" not in refused.stdout + refused.stderr


def test_a_pubsub_source_is_pulled_through_the_emulator_host_into_the_lake_once(tmp_path: Path) -> None:
    from tests.collectors.pubsub_server import PubSubServer
    from tests.collectors.test_pull_pubsub import log_entry

    subscription = "projects/northgate-prod/subscriptions/citysoc-audit"
    server = PubSubServer(subscription).start()
    try:
        for number in range(5):
            server.publish(log_entry(number))
        home = tmp_path / "soc"
        assert soc(home, "tenants", "add", NG).returncode == 0
        added = soc(home, "sources", "add", "--tenant", NG, "--kind", "gcp-pubsub", "gcp-audit",
                    "--setting", f"subscription={subscription}")
        assert added.returncode == 0 and "roles/pubsub.subscriber" in added.stdout, added.stderr
        pulled = soc(home, "pull", "--once", PUBSUB_EMULATOR_HOST=server.host)
        assert pulled.returncode == 0 and "pulled 5 records" in pulled.stderr, pulled.stderr
        assert server.outstanding() == []
        store = ParquetEventStore(home / "lake" / "events")
        assert store.stored(tenant=NG, dataset="gcp.audit") == 5
        again = soc(home, "pull", "--once", PUBSUB_EMULATOR_HOST=server.host)
        assert again.returncode == 0 and "pulled 0 records" in again.stderr
    finally:
        server.stop()


@pytest.mark.slow
def test_an_eventhub_source_is_pulled_from_the_local_amqp_server_into_the_lake_once(tmp_path: Path) -> None:
    from tests.collectors.eventhub_server import EventHubServer
    from tests.collectors.test_pull_eventhub import HUB, body, signin_ids

    server = EventHubServer(HUB, partitions=("0", "1"), consumer_groups=("$Default", "citysoc")).start()
    try:
        server.publish("0", body(1, 2))
        server.publish("1", body(3))
        home = tmp_path / "soc"
        assert soc(home, "tenants", "add", NG).returncode == 0
        added = soc(home, "sources", "add", "--tenant", NG, "--kind", "azure-eventhub", "entra-signins",
                    "--parser", "azure.signinlogs", "--setting", "connection_string=env:NG_EVENTHUB",
                    "--setting", f"eventhub={HUB}", "--setting", "consumer_group=citysoc",
                    "--setting", "idle_seconds=1", "--setting", "connect_seconds=6")
        assert added.returncode == 0 and "Listen" in added.stdout, added.stderr
        pulled = soc(home, "pull", "--once", NG_EVENTHUB=server.connection_string())
        assert pulled.returncode == 0 and "pulled 2 records" in pulled.stderr, pulled.stderr
        assert server.key not in pulled.stdout + pulled.stderr
        store = ParquetEventStore(home / "lake" / "events")
        assert store.stored(tenant=NG, dataset="azure.signinlogs") == 3
        assert sorted(stored_ids(store.events_dir)) == signin_ids(1, 2, 3)
        again = soc(home, "pull", "--once", NG_EVENTHUB=server.connection_string())
        assert again.returncode == 0 and "pulled 0 records" in again.stderr
        assert store.stored(tenant=NG, dataset="azure.signinlogs") == 3
    finally:
        server.stop()
