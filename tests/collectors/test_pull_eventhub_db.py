"""The Event Hub checkpoint store on a database, on SQLite and on PostgreSQL (127.0.0.1:5432, a database of its
own per run): checkpoints written through the SDK's own `PartitionContext`, the claim rules two racing pullers
meet, and the SDK's own load balancer (`OwnershipManager`) sharing an event hub's partitions between pullers
through the store. No Event Hubs server runs here: the manager is handed the event hub's partition ids by a
small stand-in for the client (the only thing it asks the service)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from azure.eventhub import EventData, LoadBalancingStrategy
from azure.eventhub._eventprocessor.ownership_manager import OwnershipManager
from azure.eventhub._eventprocessor.partition_context import PartitionContext
from azure.eventhub._pyamqp.message import Message

from collectors.pull import PullError, get_puller
from collectors.pull.eventhub_db import DatabaseCheckpointStore
from tests.collectors.pull_helpers import UnreachableEventHub

NAMESPACE, HUB, GROUP = "member.servicebus.windows.net", "insights-logs", "citysoc"
POSTGRES_ADMIN_DSN = os.environ.get("SOC_TEST_POSTGRES_DSN",
                                    "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('eventhub') / 'pull.db'}"
        return
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable ({POSTGRES_ADMIN_DSN}): {error}".strip())
    name = f"citysoc_eventhub_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://{admin.info.user}@{admin.info.host}:{admin.info.port}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def hub(database: str) -> Iterator[str]:
    """A fresh event hub name per test: the tests share the module's database."""
    yield f"{HUB}-{uuid.uuid4().hex[:8]}"


def received(sequence: int) -> EventData:
    message = Message(data=[b'{"records": []}'], message_annotations={
        b"x-opt-sequence-number": sequence, b"x-opt-offset": str(sequence * 100).encode(),
        b"x-opt-enqueued-time": 1_764_000_000_000})
    return EventData._from_message(message)


def test_checkpoints_written_through_the_sdk_survive_a_restart(database: str, hub: str) -> None:
    store = DatabaseCheckpointStore(database)
    for partition, last in (("0", 4), ("1", 9)):
        context = PartitionContext(NAMESPACE, hub, GROUP, partition, checkpoint_store=store)
        context.update_checkpoint(received(last - 1))
        context.update_checkpoint(received(last))  # the newer checkpoint replaces the older
    store.close()
    reopened = DatabaseCheckpointStore(database)  # a restart, or another puller
    assert sorted(reopened.list_checkpoints(NAMESPACE, hub, GROUP), key=lambda entry: entry["partition_id"]) == [
        {"fully_qualified_namespace": NAMESPACE, "eventhub_name": hub, "consumer_group": GROUP, "partition_id": "0",
         "offset": "400", "sequence_number": 4},
        {"fully_qualified_namespace": NAMESPACE, "eventhub_name": hub, "consumer_group": GROUP, "partition_id": "1",
         "offset": "900", "sequence_number": 9}]
    assert list(reopened.list_checkpoints(NAMESPACE, hub, "other-group")) == []
    reopened.close()


def test_a_claim_wins_only_unclaimed_or_with_the_etag_last_read(database: str, hub: str) -> None:
    first, second = DatabaseCheckpointStore(database), DatabaseCheckpointStore(database)  # two pullers
    claim = {"fully_qualified_namespace": NAMESPACE, "eventhub_name": hub, "consumer_group": GROUP,
             "partition_id": "1", "owner_id": "a"}
    [won] = first.claim_ownership([dict(claim)])
    assert won["owner_id"] == "a" and won["etag"]
    assert list(second.claim_ownership([{**claim, "owner_id": "b"}])) == []  # it listed before a's claim
    assert list(second.claim_ownership([{**claim, "owner_id": "b", "etag": "stale"}])) == []
    [taken] = second.claim_ownership([{**claim, "owner_id": "b", "etag": won["etag"]}])
    assert taken["etag"] != won["etag"]
    assert list(first.claim_ownership([{**claim, "etag": won["etag"]}])) == []  # a's etag is stale now
    assert [entry["owner_id"] for entry in first.list_ownership(NAMESPACE, hub, GROUP)] == ["b"]
    first.close()
    second.close()


def test_racing_pullers_never_both_win_a_partition(database: str, hub: str) -> None:
    stores = [DatabaseCheckpointStore(database) for _ in range(4)]
    wins: list[str] = []
    start = threading.Barrier(len(stores))

    def race(store: DatabaseCheckpointStore, owner: str) -> None:
        start.wait()
        for partition in range(8):
            claimed = store.claim_ownership([{"fully_qualified_namespace": NAMESPACE, "eventhub_name": hub,
                                              "consumer_group": GROUP, "partition_id": str(partition),
                                              "owner_id": owner}])
            wins.extend(f"{entry['partition_id']}:{owner}" for entry in claimed)

    threads = [threading.Thread(target=race, args=(store, f"puller-{n}")) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(win.split(":")[0] for win in wins) == [str(n) for n in range(8)]  # each partition exactly once
    owners = {entry["partition_id"]: entry["owner_id"] for entry in stores[0].list_ownership(NAMESPACE, hub, GROUP)}
    assert {f"{partition}:{owner}" for partition, owner in owners.items()} == set(wins)
    for store in stores:
        store.close()


def manager(store: DatabaseCheckpointStore, hub: str, owner: str, partitions: int) -> OwnershipManager:
    client: Any = SimpleNamespace(_address=SimpleNamespace(hostname=NAMESPACE), eventhub_name=hub,
                                  get_partition_ids=lambda: [str(n) for n in range(partitions)])
    return OwnershipManager(client, GROUP, owner, store, ownership_timeout=60,
                            load_balancing_strategy=LoadBalancingStrategy.BALANCED, partition_id=None)


def test_the_sdks_load_balancer_shares_the_partitions_and_takes_over_released_ones(database: str, hub: str) -> None:
    stores = [DatabaseCheckpointStore(database), DatabaseCheckpointStore(database)]
    a, b = manager(stores[0], hub, "puller-a", 4), manager(stores[1], hub, "puller-b", 4)
    owned: dict[str, list[str]] = {}
    for _ in range(6):  # the SDK's load-balancing rounds, one claim each per round
        for name, balancer in (("a", a), ("b", b)):
            owned[name] = sorted(balancer.claim_ownership())
    assert len(owned["a"]) == len(owned["b"]) == 2 and not set(owned["a"]) & set(owned["b"])
    for partition in owned["a"]:  # puller a shuts down: the SDK releases what it holds
        a.release_ownership(partition)
    for _ in range(4):
        owned["b"] = sorted(b.claim_ownership())
    assert owned["b"] == ["0", "1", "2", "3"]
    for store in stores:
        store.close()


def test_the_puller_takes_the_database_store_from_its_environment(tmp_path: Path,
                                                                  unreachable_eventhub: UnreachableEventHub) -> None:
    """With SOC_PULL_DATABASE_URL the Event Hub puller runs the SDK's client on the shared store (here against a
    closed local port: the pull fails with the client's reason, and the store's tables exist). SQLite only: the
    wiring is the same for PostgreSQL, and the client's connection attempts take 12 s."""
    from sqlalchemy import create_engine, inspect

    database = f"sqlite:///{tmp_path / 'pull.db'}"
    state = tmp_path / "checkpoints"
    state.mkdir()
    puller = get_puller("azure-eventhub")(unreachable_eventhub.source, state_dir=state, environ={
        "HUB": unreachable_eventhub.connection, "SOC_PULL_DATABASE_URL": database})
    with pytest.raises(PullError, match="the event hub could not be read"):
        list(puller.batches(None))
    engine = create_engine(database)
    assert {"pull_eventhub_ownership", "pull_eventhub_checkpoints"} <= set(inspect(engine).get_table_names())
    assert list(state.iterdir()) == []  # no file store beside it
    engine.dispose()
