"""GCP audit logs from a Pub/Sub subscription (a Cloud Logging sink's topic), with the official
`google-cloud-pubsub` client's synchronous pull. Each message's data is one record (a LogEntry as JSON); the
messages of a pull are acknowledged only once they are in the spool, so a crash before the ack lets Pub/Sub
redeliver them after the ack deadline, and the store keeps each once (its `insertId`). A message without
data is dead-lettered and acknowledged. Credential: a service account key file (`credentials_file=file:...`
is its path, not its content) with `roles/pubsub.subscriber` on the subscription, or the machine's default
credentials. `PUBSUB_EMULATOR_HOST` in the puller's environment points the client at an emulator (an
insecure channel, no credentials), as the client library itself does.

A batch handed to the runner but not acknowledged when the poll ends (the spool refused it, the poll was
stopped) is nacked (`ModifyAckDeadline` 0), so Pub/Sub delivers it again at once instead of after the ack
deadline; a crash leaves it to the deadline.

No Pub/Sub emulator is available from the package registries here (it ships with the gcloud SDK only): the
tests run the real client against a local gRPC server of the documented Subscriber methods
(tests/collectors/pubsub_server.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller
from collectors.records import RawRecord

MAX_MESSAGES = 500
MAX_PULLS_PER_POLL = 200


def message_records(received: Iterable[Any], *, subscription: str,
                    record: Any) -> tuple[list[RawRecord], list[tuple[RawRecord, str]], list[str]]:
    """(records, dead letters, ack ids) of pulled `ReceivedMessage`s."""
    records: list[RawRecord] = []
    dead: list[tuple[RawRecord, str]] = []
    ack_ids: list[str] = []
    for item in received:
        message = item.message
        origin = f"pubsub {subscription} {message.message_id}"
        data = bytes(message.data)
        if data.strip():
            records.append(record(data, origin))
        else:
            attributes = ", ".join(f"{key}={value}" for key, value in sorted(message.attributes.items()))
            dead.append((record(attributes.encode(), origin), "the message has no data"))
        ack_ids.append(item.ack_id)
    return records, dead, ack_ids


@register_puller
class PubSubPuller(Puller):
    kind = "gcp-pubsub"
    required_settings = ("subscription",)
    secret_settings = ("credentials_file",)

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        from google.api_core import exceptions
        from google.cloud import pubsub_v1

        subscription = self.source.setting("subscription")
        if not subscription.startswith("projects/") or "/subscriptions/" not in subscription:
            raise PullError("subscription must be projects/PROJECT/subscriptions/NAME", where=self.source.where)
        credentials = None
        reference = self.source.setting("credentials_file")
        if reference:
            from google.oauth2 import service_account

            scheme, _, path = reference.partition(":")
            if scheme != "file":
                raise PullError("credentials_file is file:/path/to/key.json", where=self.source.where)
            credentials = service_account.Credentials.from_service_account_file(path)  # type: ignore[no-untyped-call]
        environ = os.environ if self.environ is None else self.environ
        emulator = environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            import grpc
            from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

            subscriber = pubsub_v1.SubscriberClient(
                transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator)))
        else:
            subscriber = pubsub_v1.SubscriberClient(credentials=credentials)
        unacknowledged: list[str] = []
        try:
            for _ in range(MAX_PULLS_PER_POLL):
                try:
                    response = subscriber.pull(request={"subscription": subscription, "max_messages": MAX_MESSAGES},
                                               timeout=30)
                except exceptions.DeadlineExceeded:
                    return
                except exceptions.GoogleAPICallError as error:
                    raise PullError(f"Pub/Sub pull failed: {error}", where=self.source.where) from None
                if not response.received_messages:
                    return
                records, dead, ack_ids = message_records(response.received_messages, subscription=subscription,
                                                         record=self.record)
                unacknowledged = ack_ids

                def acknowledge(ack_ids: list[str] = ack_ids) -> None:
                    nonlocal unacknowledged
                    try:
                        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
                    except exceptions.GoogleAPICallError as error:
                        raise PullError(f"Pub/Sub acknowledge failed (the messages come again after their ack "
                                        f"deadline; the store keeps each once): {error}",
                                        where=self.source.where) from None
                    finally:
                        unacknowledged = []

                yield PullBatch(records, acknowledge=acknowledge, dead=dead)
        finally:
            if unacknowledged:
                _nack(subscriber, subscription, unacknowledged)
            subscriber.close()


def _nack(subscriber: Any, subscription: str, ack_ids: list[str]) -> None:
    """Hand messages back for delivery at once; best effort (the ack deadline brings them back anyway)."""
    from google.api_core import exceptions

    with contextlib.suppress(exceptions.GoogleAPICallError):
        subscriber.modify_ack_deadline(request={"subscription": subscription, "ack_ids": ack_ids,
                                                "ack_deadline_seconds": 0}, timeout=10)
