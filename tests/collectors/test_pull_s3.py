"""CloudTrail from S3, by listing and by SQS notifications, against moto's server mode (a local S3 and SQS
speaking the AWS wire protocols to the real boto3), drained into a real lake: exactly-once storage across a
SIGKILL between the spool append and the checkpoint (or the SQS delete), late objects, partitions per
account and region, unreadable objects dead-lettered, notifications naming another bucket refused."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from citysoc.store import ParquetEventStore
from collectors.drain import Drainer
from collectors.pull import PullSource
from tests.collectors.pull_helpers import Harness
from tests.store.lake_helpers import stored_ids

ENV = {"AWS_KEY_ID": "testing-key", "AWS_SECRET": "testing-secret"}
BUCKET = "member-trail"
ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def client(moto: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto, region_name="eu-west-2",
                        aws_access_key_id=ENV["AWS_KEY_ID"], aws_secret_access_key=ENV["AWS_SECRET"])


def trail_object(prefix: str, count: int, account: str = ACCOUNT) -> bytes:
    records = [{"eventVersion": "1.08", "eventID": f"{prefix}-{n:04d}", "eventTime": "2026-12-01T10:00:00Z",
                "eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com", "awsRegion": "eu-west-2",
                "sourceIPAddress": "198.51.100.7", "recipientAccountId": account,
                "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": account}}
               for n in range(count)]
    return gzip.compress(json.dumps({"Records": records}).encode())


def key(region: str, day: int, name: str) -> str:
    return (f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/12/{day:02d}/"
            f"{ACCOUNT}_CloudTrail_{region}_202612{day:02d}T1000Z_{name}.json.gz")


@pytest.fixture
def bucket(moto: str) -> Iterator[Any]:
    s3 = client(moto, "s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    yield s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


class Lake(Harness):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, ENV)
        self.store = ParquetEventStore(tmp / "events")

    def drain(self) -> list[str]:
        Drainer(self.spool, self.store, self.dead).run_once(max_records=10**6)
        return stored_ids(self.store.events_dir)


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    lake = Lake(tmp_path)
    yield lake
    lake.spool.close()


def s3_source(moto: str, **settings: Any) -> PullSource:
    return PullSource(id=11, tenant="council", name="trail", kind="aws-s3", parser="aws.cloudtrail", settings={
        "bucket": BUCKET, "region": "eu-west-2", "endpoint_url": moto, "access_key_id": "env:AWS_KEY_ID",
        "secret_access_key": "env:AWS_SECRET", "prefix": "AWSLogs/", **settings}, cloud_accounts=(ACCOUNT,))


def test_listing_reads_each_partition_in_key_order_and_stores_each_event_once(
        moto: str, bucket: Any, lake: Lake) -> None:
    for region in ("eu-west-2", "us-east-1"):
        for day in (1, 2):
            bucket.put_object(Bucket=BUCKET, Key=key(region, day, f"a{day}"), Body=trail_object(f"{region}-{day}", 30))
    bucket.put_object(Bucket=BUCKET, Key=key("eu-west-2", 2, "b-broken"), Body=b"\x1f\x8b\x08not really gzip")
    # another account's trail in the member's bucket: never filed under this member
    bucket.put_object(Bucket=BUCKET, Key=key("eu-west-2", 2, "c-foreign"), Body=trail_object("foreign", 2,
                                                                                              "999999999999"))
    source = s3_source(moto)
    report = lake.runner(source).poll()
    assert report.records == 120 and report.dead_lettered == 3 and not report.failed
    state = json.loads((lake.checkpoint_dir / "source-11-aws-s3.json").read_text())["state"]
    assert sorted(state["partitions"]) == [f"AWSLogs/{ACCOUNT}/CloudTrail/eu-west-2/",
                                           f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"]
    letters = {letter["origin"]: letter["reason"] for letter in lake.dead.list(tenant="council")}
    broken = next(origin for origin in letters if origin.startswith(f"s3://{BUCKET}/{key('eu-west-2', 2, 'b-broken')}"))
    assert "gzip" in letters[broken]
    assert sum("names account 999999999999, not registered" in reason for reason in letters.values()) == 2
    assert len(lake.drain()) == 120
    # nothing new: nothing read; an object delivered late with an earlier key is still found, once
    assert lake.runner(source).poll().records == 0
    bucket.put_object(Bucket=BUCKET, Key=key("eu-west-2", 1, "late"), Body=trail_object("late", 5))
    assert lake.runner(source).poll().records == 5
    assert lake.runner(source).poll().records == 0
    ids = lake.drain()
    assert len(ids) == len(set(ids)) == 125


def test_kill_between_append_and_checkpoint_stores_every_event_once(moto: str, bucket: Any, lake: Lake) -> None:
    for day in range(1, 5):
        bucket.put_object(Bucket=BUCKET, Key=key("eu-west-2", day, "x"), Body=trail_object(f"d{day}", 40))
    source = s3_source(moto)
    assert lake.crash_once(source, kill_after=2) == -9  # the second object is spooled, its checkpoint not
    assert lake.runner(source).poll().records == 120  # the second object again, then the third and fourth
    spooled = [record for batch in lake.spool.pending() for record in batch.records]
    assert len(spooled) == 200  # at least once in the spool ...
    ids = lake.drain()
    assert len(ids) == len(set(ids)) == 160  # ... exactly once in the store


def test_sqs_notifications_delete_only_what_is_stored(moto: str, bucket: Any, lake: Lake) -> None:
    sqs = client(moto, "sqs")
    queue_url = sqs.create_queue(QueueName="trail-notices", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bucket.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    for day in (1, 2, 3):
        bucket.put_object(Bucket=BUCKET, Key=key("eu-west-2", day, "with space"), Body=trail_object(f"q{day}", 10))
    # CloudTrail's own SNS notice, wrapped in SNS's envelope; another bucket's; and a message that is no notice
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Type": "Notification", "Message": json.dumps(
        {"s3Bucket": BUCKET, "s3ObjectKey": [key("eu-west-2", 1, "with space")]})}))
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(
        {"s3Bucket": "someone-elses-bucket", "s3ObjectKey": ["AWSLogs/999999999999/x.json.gz"]}))
    sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    source = s3_source(moto, queue_url=queue_url, visibility_timeout=1)
    assert lake.crash_once(source, kill_after=1) == -9  # killed before the first message's delete
    time.sleep(1.5)  # its visibility timeout passes: SQS hands it out again
    report = lake.runner(source).poll()
    assert not report.failed
    assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                    "ApproximateNumberOfMessagesNotVisible"])["Attributes"] == {
        "ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    reasons = sorted(letter["reason"] for letter in lake.dead.list(tenant="council"))
    assert len(reasons) == 2
    assert "not the source's 'member-trail'" in reasons[1] and "not JSON" in reasons[0]
    ids = lake.drain()
    assert len(ids) == len(set(ids)) == 30
