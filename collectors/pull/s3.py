"""Objects from an S3 bucket (CloudTrail's delivery; any parser's files, e.g. GitHub audit streaming to S3), with
boto3. Two ways to know what is new:

- **SQS notifications** (`queue_url`, recommended): S3 event notifications, the same wrapped in SNS, or
  CloudTrail's own SNS notice (`s3Bucket`, `s3ObjectKey`), received from the queue; each named object is
  read and spooled, and the message is deleted only after its objects are stored (checkpointed). A crash
  before the delete lets the message come back after its visibility timeout: read again, stored once.
- **Listing** (no queue): each partition of the bucket (the path before the `YYYY/MM/DD/` folders, such as
  `AWSLogs/<account>/CloudTrail/<region>/`) is listed in key order after its checkpoint. Objects are
  delivered a few minutes late, so the checkpoint keeps the keys stored in the last `RELIST` (by their
  LastModified) and the listing starts at the oldest of them, skipping those it holds.

Objects are read by the parser's own file reader (gzip detected by content, JSON arrays, `{"Records": [...]}`,
NDJSON), so an object ingests exactly like the same file given to `soc ingest`; what that reader cannot
read (not gzip, not JSON, truncated) is dead-lettered with its reason. A notification naming another
bucket than the source's is dead-lettered and deleted: the credential is never pointed at a bucket the
member did not register.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import orjson

from collectors.base import ParserOptions, get_parser
from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller

RELIST = timedelta(hours=1)
RECEIVE_ROUNDS = 100  # SQS receives per poll (10 messages each)
_YEAR = re.compile(r"^\d{4}$")
MAX_DEPTH = 6


@register_puller
class S3Puller(Puller):
    kind = "aws-s3"
    required_settings = ("bucket",)
    secret_settings = ("access_key_id", "secret_access_key", "session_token")

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        options: dict[str, Any] = {"region_name": self.source.setting("region"),
                                   "config": Config(retries={"mode": "adaptive", "max_attempts": 8})}
        if self.source.setting("endpoint_url"):
            options["endpoint_url"] = self.source.setting("endpoint_url")
        key_id = self.optional_secret("access_key_id")
        if key_id:
            options.update(aws_access_key_id=key_id, aws_secret_access_key=self.secret("secret_access_key"),
                           aws_session_token=self.optional_secret("session_token"))
        session = boto3.session.Session()
        self.s3 = session.client("s3", **options)
        self.bucket = self.source.setting("bucket")
        try:
            if self.source.setting("queue_url"):
                sqs_options = {**options}
                if self.source.setting("sqs_endpoint_url"):
                    sqs_options["endpoint_url"] = self.source.setting("sqs_endpoint_url")
                self.sqs = session.client("sqs", **sqs_options)
                yield from self._from_queue(self.source.setting("queue_url"))
            else:
                yield from self._from_listing(checkpoint or {})
        except (BotoCoreError, ClientError) as error:
            raise PullError(f"S3/SQS refused or failed: {error}", where=self.source.where) from None

    # --- SQS ---------------------------------------------------------------------------------------------

    def _from_queue(self, queue_url: str) -> Iterator[PullBatch]:
        for _ in range(RECEIVE_ROUNDS):
            answer = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                              VisibilityTimeout=int(self.source.setting("visibility_timeout", 300)))
            messages = answer.get("Messages", [])
            if not messages:
                return
            for message in messages:
                delete = _deleter(self.sqs, queue_url, message["ReceiptHandle"])
                objects, problem = notified_objects(message.get("Body", ""))
                origin = f"sqs {message.get('MessageId', '')}"
                if problem is not None:
                    yield PullBatch([], acknowledge=delete,
                                    dead=[(self.record(message.get("Body", "").encode(), origin), problem)])
                    continue
                batches = [self._object(key) if bucket == self.bucket else PullBatch([], dead=[(
                    self.record(orjson.dumps({"bucket": bucket, "key": key}), origin),
                    f"the notification names bucket {bucket!r}, not the source's {self.bucket!r}")])
                    for bucket, key in objects]
                if not batches:
                    yield PullBatch([], acknowledge=delete)  # a test event, or a notice of nothing
                    continue
                yield from batches[:-1]
                batches[-1].acknowledge = delete
                yield batches[-1]

    # --- listing -----------------------------------------------------------------------------------------

    def _from_listing(self, checkpoint: Checkpoint) -> Iterator[PullBatch]:
        state: dict[str, dict[str, Any]] = {name: dict(value)
                                            for name, value in checkpoint.get("partitions", {}).items()}
        for partition in self._partitions(self.source.setting("prefix", ""), 0):
            current = state.setdefault(partition, {"recent": {}})
            recent: dict[str, str] = dict(current.get("recent", {}))
            start_after = min(recent) if recent else current.get("after")
            for item in self._list(partition, start_after):
                key = item["Key"]
                if key in recent:
                    continue
                batch = self._object(key)
                recent[key] = item["LastModified"].isoformat()
                newest = max(datetime.fromisoformat(value) for value in recent.values())
                recent = {name: value for name, value in recent.items()
                          if datetime.fromisoformat(value) >= newest - RELIST}
                current.update(after=key if current.get("after") is None or key > current["after"] else
                               current["after"], recent=recent)
                batch.checkpoint = {"partitions": {name: {"after": value.get("after"),
                                                          "recent": dict(value.get("recent", {}))}
                                                   for name, value in state.items()}}
                yield batch

    def _partitions(self, prefix: str, depth: int) -> list[str]:
        children: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            children.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", []))
        if not children or depth >= MAX_DEPTH or any(_YEAR.match(child[len(prefix):].rstrip("/"))
                                                     for child in children):
            return [prefix]
        return [partition for child in sorted(children) for partition in self._partitions(child, depth + 1)]

    def _list(self, partition: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": partition}
        if start_after:
            arguments["StartAfter"] = start_after
        for page in paginator.paginate(**arguments):
            yield from page.get("Contents", [])

    # --- objects -----------------------------------------------------------------------------------------

    def _object(self, key: str) -> PullBatch:
        origin = f"s3://{self.bucket}/{key}"
        parser = get_parser(self.source.parser)(ParserOptions(now=self.clock()))
        with tempfile.TemporaryDirectory(prefix="soc-s3-") as folder:
            path = Path(folder) / "object"
            with open(path, "wb") as handle:
                self.s3.download_fileobj(self.bucket, key, handle)
            batch = PullBatch([])
            for record in parser.records(path):
                record = record._replace(origin=origin + record.origin[len(str(path)):])
                if record.problem is not None:
                    batch.dead.append((record, record.problem.reason))
                else:
                    batch.records.append(record)
        return batch


def notified_objects(body: str) -> tuple[list[tuple[str, str]], str | None]:
    """(bucket, key) pairs an SQS message names: an S3 event notification (keys URL-encoded), the same inside
    an SNS envelope, or CloudTrail's SNS notice; or why the message is none of these."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return [], f"the message is not JSON ({error})"
    if isinstance(document, dict) and document.get("Type") == "Notification" and isinstance(document.get("Message"),
                                                                                             str):
        return notified_objects(document["Message"])
    if not isinstance(document, dict):
        return [], "the message is not a JSON object"
    if document.get("Event") == "s3:TestEvent":
        return [], None
    if isinstance(document.get("s3Bucket"), str) and isinstance(document.get("s3ObjectKey"), list):
        return [(document["s3Bucket"], key) for key in document["s3ObjectKey"] if isinstance(key, str)], None
    records = document.get("Records")
    if isinstance(records, list):
        pairs = []
        for record in records:
            s3 = record.get("s3") if isinstance(record, dict) else None
            created = str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated")
            if not isinstance(s3, dict) or not created:
                continue
            bucket, key = s3.get("bucket", {}).get("name"), s3.get("object", {}).get("key")
            if isinstance(bucket, str) and isinstance(key, str):
                pairs.append((bucket, unquote_plus(key)))
        return pairs, None
    return [], "the message is neither an S3 event notification nor a CloudTrail notice"


def _deleter(sqs: Any, queue_url: str, receipt: str) -> Any:
    def delete() -> None:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)

    return delete


__all__ = ["S3Puller", "notified_objects"]
