"""GCP audit logs pulled from Pub/Sub by the real `google-cloud-pubsub` client, pointed (PUBSUB_EMULATOR_HOST) at a
local gRPC server of the documented Subscriber methods (tests/collectors/pubsub_server.py; no registry here ships
the Pub/Sub emulator), drained into a real lake: messages filed under the source's tenant, acknowledged only
once durable in the spool, a SIGKILL between the spool append and the ack redelivered after the ack deadline
and stored once (by `insertId`), a batch the spool refuses nacked for delivery at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citysoc.store import ParquetEventStore
from collectors.drain import Drainer
from collectors.pull import PullSource
from collectors.spool import Spool
from tests.collectors.pubsub_server import PubSubServer
from tests.collectors.pull_helpers import Harness
from tests.store.lake_helpers import stored_ids

SUBSCRIPTION = "projects/council-prod/subscriptions/citysoc-audit"


def log_entry(number: int) -> bytes:
    return json.dumps({
        "insertId": f"entry-{number:03d}", "logName": "projects/council-prod/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": "2026-12-01T10:00:00.123456Z", "receiveTimestamp": "2026-12-01T10:00:01Z",
        "resource": {"type": "service_account", "labels": {"project_id": "council-prod"}},
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                         "serviceName": "iam.googleapis.com",
                         "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                         "resourceName": f"projects/-/serviceAccounts/sa-{number}@council-prod.iam.gserviceaccount.com",
                         "authenticationInfo": {"principalEmail": "ops@council.example"},
                         "requestMetadata": {"callerIp": "198.51.100.7"}}}).encode()


@pytest.fixture
def pubsub() -> Iterator[PubSubServer]:
    server = PubSubServer(SUBSCRIPTION, ack_deadline=1.0, per_pull=2).start()
    yield server
    server.stop()


class Lake(Harness):
    def __init__(self, tmp: Path, pubsub: PubSubServer) -> None:
        super().__init__(tmp, {"PUBSUB_EMULATOR_HOST": pubsub.host})
        self.store = ParquetEventStore(tmp / "events")

    def drain(self) -> list[str]:
        Drainer(self.spool, self.store, self.dead).run_once(max_records=10**6)
        return stored_ids(self.store.events_dir)


@pytest.fixture
def lake(tmp_path: Path, pubsub: PubSubServer) -> Iterator[Lake]:
    lake = Lake(tmp_path, pubsub)
    yield lake
    lake.spool.close()


def pubsub_source(subscription: str = SUBSCRIPTION) -> PullSource:
    return PullSource(id=21, tenant="council", name="gcp-audit", kind="gcp-pubsub", parser="gcp.audit",
                      settings={"subscription": subscription})


def test_messages_are_filed_under_the_tenant_and_acknowledged_once_spooled(pubsub: PubSubServer, lake: Lake) -> None:
    published = [pubsub.publish(log_entry(n), **{"logging.googleapis.com/timestamp": "2026-12-01T10:00:00Z"})
                 for n in range(5)]
    empty = pubsub.publish(b"", note="no data")
    acknowledged_at_append: list[list[str]] = []
    append = lake.spool.append

    def spy(**batch: Any) -> None:  # what the service had been told when each batch reached the spool
        acknowledged_at_append.append(list(pubsub.acknowledged))
        append(**batch)

    runner = lake.runner(pubsub_source())
    runner.spool = type("SpyingSpool", (), {"append": staticmethod(spy)})()
    report = runner.poll()
    assert not report.failed and report.records == 5 and report.dead_lettered == 1
    assert acknowledged_at_append == [[], published[:2], published[:4]]  # 2 a pull: each acked after its append
    assert pubsub.outstanding() == [] and sorted(pubsub.acknowledged) == sorted([*published, empty])
    assert [letter["reason"] for letter in lake.dead.list(tenant="council")] == ["the message has no data"]
    assert sorted(lake.drain()) == [f"entry-{n:03d}" for n in range(5)]
    assert lake.store.stored(tenant="council", dataset="gcp.audit") == 5


def test_kill_between_spool_and_ack_redelivers_and_the_store_keeps_each_once(pubsub: PubSubServer,
                                                                             lake: Lake) -> None:
    published = [pubsub.publish(log_entry(n)) for n in range(5)]
    assert lake.crash_once(pubsub_source(), kill_after=2) == -9  # the second pull is spooled, not acknowledged
    assert pubsub.acknowledged == published[:2] and pubsub.outstanding() == published[2:]
    time.sleep(1.2)  # the lease of the second pull ends: Pub/Sub hands its messages out again
    report = lake.runner(pubsub_source()).poll()
    assert not report.failed and report.records == 3
    assert pubsub.outstanding() == [] and pubsub.deliveries.count(published[2]) == 2
    assert len(lake.payloads()) == 7  # the redelivered pair is in the spool twice ...
    ids = lake.drain()
    assert sorted(ids) == [f"entry-{n:03d}" for n in range(5)]  # ... and in the store once


def test_a_batch_the_spool_refuses_is_handed_back_at_once(pubsub: PubSubServer, lake: Lake, tmp_path: Path) -> None:
    pubsub.ack_deadline = 600.0  # only a nack can bring the messages back within the test
    published = [pubsub.publish(log_entry(n)) for n in range(2)]
    full = Spool(tmp_path / "small-spool", max_bytes=64)
    runner = lake.runner(pubsub_source())
    runner.spool = full
    report = runner.poll()
    assert "spool is full" in report.failed["gcp-audit"]
    full.close()
    assert pubsub.acknowledged == [] and pubsub.outstanding() == published
    report = lake.runner(pubsub_source()).poll()  # at once, not after the 600 s deadline
    assert not report.failed and report.records == 2 and pubsub.outstanding() == []


def test_an_unknown_subscription_fails_the_source_with_the_services_answer(pubsub: PubSubServer, lake: Lake) -> None:
    report = lake.runner(pubsub_source("projects/council-prod/subscriptions/gone")).poll()
    assert "Pub/Sub pull failed: 404 Resource not found (resource=gone)." in report.failed["gcp-audit"]
