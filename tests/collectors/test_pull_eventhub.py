"""Entra sign-in logs pulled from an Event Hub by the real `azure-eventhub` consumer client, pointed (a connection
string with `UseDevelopmentEmulator=true`, plain AMQP on a local port) at a local AMQP 1.0 server of what the
service documents (tests/collectors/eventhub_server.py, on Qpid Proton; no registry here ships an Event Hubs
server), drained into a real lake: both partitions read, events filed under the source's tenant, each partition's
checkpoint written only after the spool holds its batch, a restart starting after the checkpoint (the offset
filter the client attaches with), and a SIGKILL between the spool append and the checkpoint received again and
stored once (by the sign-in's `properties.id`). Each pull waits `idle_seconds` (1 s) twice to call itself caught
up, and a pull that receives nothing `connect_seconds` (6 s, against 15 s by default) more, so these tests take
seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citysoc.store import ParquetEventStore
from collectors.drain import Drainer
from collectors.pull import PullSource
from tests.collectors.eventhub_server import EventHubServer
from tests.collectors.pull_helpers import Harness
from tests.store.lake_helpers import stored_ids

pytestmark = pytest.mark.slow

HUB = "insights-logs-signinlogs"


def signin(number: int) -> dict[str, Any]:
    """A `SignInLogs` record as Entra's diagnostic setting writes it (the shape of Microsoft's documented example)."""
    return {
        "time": "2026-12-01T10:00:00.1234567Z",
        "resourceId": "/tenants/5b7c7f0a-0000-4000-8000-000000000001/providers/Microsoft.aadiam",
        "operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs",
        "tenantId": "5b7c7f0a-0000-4000-8000-000000000001", "resultType": "50126", "resultSignature": "None",
        "resultDescription": "Invalid username or password or Invalid on-premise username or password.",
        "durationMs": 0, "callerIpAddress": "198.51.100.23", "correlationId": f"c0ffee00-0000-4000-8000-{number:012d}",
        "identity": "Dana Clerk", "Level": 4, "location": "GB",
        "properties": {"id": f"5e1f0000-0000-4000-8000-{number:012d}",
                       "createdDateTime": "2026-12-01T10:00:00.1234567+00:00",
                       "userDisplayName": "Dana Clerk", "userPrincipalName": "dana@northgate.example",
                       "userId": "0b5e0000-0000-4000-8000-000000000007", "appDisplayName": "Azure Portal",
                       "ipAddress": "198.51.100.23", "clientAppUsed": "Browser",
                       "status": {"errorCode": 50126, "failureReason": "Invalid username or password."}}}


def body(*numbers: int) -> bytes:
    """One event's body: the `{"records": [...]}` envelope Azure Monitor writes to the event hub."""
    return json.dumps({"records": [signin(number) for number in numbers]}).encode()


def signin_ids(*numbers: int) -> list[str]:
    return sorted(f"5e1f0000-0000-4000-8000-{number:012d}" for number in numbers)


@pytest.fixture
def hub() -> Iterator[EventHubServer]:
    server = EventHubServer(HUB, partitions=("0", "1"), consumer_groups=("$Default", "citysoc")).start()
    yield server
    server.stop()


class Lake(Harness):
    def __init__(self, tmp: Path, hub: EventHubServer) -> None:
        super().__init__(tmp, {"NORTHGATE_EVENTHUB": hub.connection_string()})
        self.store = ParquetEventStore(tmp / "events")

    def drain(self) -> list[str]:
        Drainer(self.spool, self.store, self.dead).run_once(max_records=10**6)
        return stored_ids(self.store.events_dir)

    def checkpoints(self) -> dict[str, str]:
        """partition -> the offset its checkpoint holds (the file the puller's FileCheckpointStore keeps)."""
        path = self.checkpoint_dir / "source-31-eventhub.json"
        if not path.exists():
            return {}
        entries = json.loads(path.read_text())["checkpoints"].values()
        return {entry["partition_id"]: entry["offset"] for entry in entries}


@pytest.fixture
def lake(tmp_path: Path, hub: EventHubServer) -> Iterator[Lake]:
    lake = Lake(tmp_path, hub)
    yield lake
    lake.spool.close()


def eventhub_source(group: str = "citysoc") -> PullSource:
    return PullSource(id=31, tenant="northgate", name="entra-signins", kind="azure-eventhub", parser="azure.signinlogs",
                      settings={"connection_string": "env:NORTHGATE_EVENTHUB", "eventhub": HUB,
                                "consumer_group": group, "idle_seconds": "1", "connect_seconds": "6"})


def test_both_partitions_are_filed_under_the_tenant_and_checkpointed_after_the_spool(hub: EventHubServer,
                                                                                    lake: Lake) -> None:
    first = [hub.publish("0", body(1, 2)), hub.publish("0", body(3)), hub.publish("0", body(4, 5))]
    second = [hub.publish("1", body(6)), hub.publish("1", body(7, 8))]
    checkpoints_at_append: list[tuple[dict[str, str], list[str]]] = []
    append = lake.spool.append

    def spy(**batch: Any) -> None:  # which checkpoints were written when each batch reached the spool
        checkpoints_at_append.append((lake.checkpoints(), [record.origin for record in batch["records"]]))
        append(**batch)

    runner = lake.runner(eventhub_source())
    runner.spool = type("SpyingSpool", (), {"append": staticmethod(spy)})()
    report = runner.poll()
    assert not report.failed and report.records == 5  # one record per event: its {"records": [...]} body
    for checkpoints, origins in checkpoints_at_append:  # a partition's batch is spooled before its checkpoint
        for origin in origins:
            partition = origin.split(" partition ")[1].split()[0]
            assert partition not in checkpoints
    assert lake.checkpoints() == {"0": str(first[-1].offset), "1": str(second[-1].offset)}
    assert {(group, partition) for group, partition, _ in hub.selectors} == {("citysoc", "0"), ("citysoc", "1")}
    assert {selector for _, _, selector in hub.selectors} == {"amqp.annotation.x-opt-offset > '-1'"}
    assert hub.tokens and not hub.refused_tokens  # the client's SAS tokens, signed with the listen key
    assert sorted(lake.drain()) == signin_ids(*range(1, 9))
    assert lake.store.stored(tenant="northgate", dataset="azure.signinlogs") == 8
    assert lake.store.stored(tenant="council", dataset="azure.signinlogs") == 0


def test_a_restart_starts_after_each_partitions_checkpoint(hub: EventHubServer, lake: Lake) -> None:
    hub.publish("0", body(1))
    hub.publish("1", body(2))
    assert lake.runner(eventhub_source()).poll().records == 2
    checkpoints = lake.checkpoints()
    hub.selectors.clear()
    again = lake.runner(eventhub_source()).poll()
    assert not again.failed and again.records == 0
    assert sorted(hub.selectors) == [("citysoc", partition, f"amqp.annotation.x-opt-offset > '{offset}'")
                                     for partition, offset in sorted(checkpoints.items())]
    later = hub.publish("1", body(3))
    third = lake.runner(eventhub_source()).poll()
    assert not third.failed and third.records == 1
    assert lake.checkpoints() == {**checkpoints, "1": str(later.offset)}
    assert len(lake.payloads()) == 3 and sorted(lake.drain()) == signin_ids(1, 2, 3)


def test_kill_between_spool_and_checkpoint_receives_again_and_the_store_keeps_each_once(hub: EventHubServer,
                                                                                        lake: Lake) -> None:
    hub.publish("0", body(1, 2))
    hub.publish("0", body(3))
    hub.publish("1", body(4))
    assert lake.crash_once(eventhub_source(), kill_after=1) == -9  # one partition's batch spooled, not checkpointed
    assert lake.checkpoints() == {}
    report = lake.runner(eventhub_source()).poll()
    assert not report.failed and report.records == 3
    assert len(lake.payloads()) > 3  # the batch in flight at the kill is in the spool twice ...
    assert sorted(lake.drain()) == signin_ids(1, 2, 3, 4)  # ... and in the store once
    assert lake.store.stored(tenant="northgate", dataset="azure.signinlogs") == 4
