"""Event Hub without its service (no registry here ships an Event Hubs server): the checkpoint store driven by
the SDK's own `PartitionContext` and received `EventData` (built from AMQP messages the way the SDK builds what
it receives); receiving is not exercised. The Pub/Sub message handling with the client's own
`ReceivedMessage` types (the pull itself runs against a local server in test_pull_pubsub.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.eventhub import EventData
from azure.eventhub._eventprocessor.partition_context import PartitionContext
from azure.eventhub._pyamqp.message import Message
from google.pubsub_v1.types import PubsubMessage, ReceivedMessage

from collectors.pull import PullError, PullSource, get_puller
from collectors.pull.eventhub import FileCheckpointStore, event_records
from collectors.pull.pubsub import message_records
from collectors.records import RawRecord
from tests.collectors.pull_helpers import UnreachableEventHub

NAMESPACE, HUB, GROUP = "member.servicebus.windows.net", "insights-logs", "citysoc"


def received(sequence: int, body: bytes) -> EventData:
    """An event as the consumer client hands it over: with the offset and sequence number the service set."""
    message = Message(data=[body], message_annotations={b"x-opt-sequence-number": sequence,
                                                        b"x-opt-offset": str(sequence * 100).encode(),
                                                        b"x-opt-enqueued-time": 1_764_000_000_000})
    return EventData._from_message(message)


def record(payload: bytes, origin: str) -> RawRecord:
    return RawRecord(payload, origin, datetime(2026, 12, 1, tzinfo=UTC))


def test_checkpoints_written_through_the_sdks_partition_context_survive_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "eventhub.json"
    context = PartitionContext(NAMESPACE, HUB, GROUP, "0", checkpoint_store=FileCheckpointStore(path))
    events = [received(n, b'{"records": []}') for n in range(3)]
    context.update_checkpoint(events[-1])
    reopened = FileCheckpointStore(path)  # a restart: what the client starts each partition after
    assert list(reopened.list_checkpoints(NAMESPACE, HUB, GROUP)) == [{
        "fully_qualified_namespace": NAMESPACE, "eventhub_name": HUB, "consumer_group": GROUP, "partition_id": "0",
        "offset": "200", "sequence_number": 2}]
    assert list(reopened.list_checkpoints(NAMESPACE, HUB, "other-group")) == []


def test_ownership_claims_follow_the_etag_rule(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "eventhub.json")
    claim = {"fully_qualified_namespace": NAMESPACE, "eventhub_name": HUB, "consumer_group": GROUP,
             "partition_id": "1", "owner_id": "a"}
    first = list(store.claim_ownership([dict(claim)]))
    assert len(first) == 1 and first[0]["etag"]
    assert list(store.claim_ownership([{**claim, "owner_id": "b", "etag": "stale"}])) == []  # lost the race
    renewed = list(store.claim_ownership([{**claim, "owner_id": "b", "etag": first[0]["etag"]}]))
    assert renewed[0]["owner_id"] == "b" and renewed[0]["etag"] != first[0]["etag"]
    assert [entry["owner_id"] for entry in FileCheckpointStore(tmp_path / "eventhub.json").list_ownership(
        NAMESPACE, HUB, GROUP)] == ["b"]


def test_each_event_body_is_one_record_and_an_empty_one_is_dead_lettered() -> None:
    envelope = json.dumps({"records": [{"category": "SignInLogs", "id": "x"}]}).encode()
    records, dead = event_records([received(7, envelope), received(8, b"  ")], eventhub=HUB, partition="3",
                                  record=record)
    assert [r.payload for r in records] == [envelope]
    assert records[0].origin == f"eventhub {HUB} partition 3 sequence 7"
    assert [reason for _, reason in dead] == ["the event's body is empty"]


def test_pubsub_messages_become_records_and_every_one_is_acknowledged() -> None:
    entry = json.dumps({"insertId": "abc", "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
                        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog"}}).encode()
    messages = [ReceivedMessage(ack_id="ack-1", message=PubsubMessage(data=entry, message_id="1")),
                ReceivedMessage(ack_id="ack-2", message=PubsubMessage(data=b"", message_id="2",
                                                                      attributes={"logging.googleapis.com/x": "y"}))]
    records, dead, ack_ids = message_records(messages, subscription="projects/p/subscriptions/s", record=record)
    assert [r.payload for r in records] == [entry] and records[0].origin == "pubsub projects/p/subscriptions/s 1"
    assert [reason for _, reason in dead] == ["the message has no data"]
    assert ack_ids == ["ack-1", "ack-2"]  # the dead letter is acknowledged too: it is kept, not redelivered


def test_pullers_refuse_missing_settings_and_literal_secrets() -> None:
    with pytest.raises(PullError, match="has no 'subscription' setting"):
        get_puller("gcp-pubsub")(PullSource(1, "council", "gcp", "gcp-pubsub", "gcp.audit", {}))
    puller = get_puller("azure-eventhub")(PullSource(2, "council", "hub", "azure-eventhub", "azure", {
        "connection_string": "Endpoint=sb://x/;SharedAccessKey=secret", "eventhub": HUB, "consumer_group": GROUP}))
    with pytest.raises(PullError, match="must be a reference, env:NAME or file:/path"):
        puller.secret("connection_string")


def test_an_event_hub_that_cannot_be_reached_fails_the_pull_with_the_reason(
        tmp_path: Path, unreachable_eventhub: UnreachableEventHub) -> None:
    """The real consumer client, pointed at a closed local port (the emulator form of a connection string):
    the pull reports why it received nothing, rather than taking the silence for being caught up."""
    puller = get_puller("azure-eventhub")(unreachable_eventhub.source, environ={"HUB": unreachable_eventhub.connection},
                                          state_dir=tmp_path)
    with pytest.raises(PullError, match=r"the event hub could not be read: .*refused"):
        list(puller.batches(None))
