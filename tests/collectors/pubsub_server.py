"""A local Pub/Sub subscriber service for the pull tests: a gRPC server speaking the documented
`google.pubsub.v1.Subscriber` methods the synchronous pull uses (`Pull`, `Acknowledge`, `ModifyAckDeadline`),
with the client library's own message types (`google.pubsub_v1.types`, proto-plus `serialize`/`deserialize`),
so the real `google-cloud-pubsub` client talks to it as to the emulator (`PUBSUB_EMULATOR_HOST`).

What it keeps of the service's documented behaviour: each delivery of a message gets a new ack id and a lease
of the subscription's ack deadline; a message not acknowledged before its lease ends is delivered again;
`ModifyAckDeadline` with 0 seconds ends the lease at once (a nack); an ack id of an ended lease acknowledges
nothing; a `Pull` returns at most `max_messages` (and may return fewer: `per_pull`); an unknown subscription
answers NOT_FOUND. Every delivery and acknowledgement is recorded for the tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1.types import (
    AcknowledgeRequest,
    ModifyAckDeadlineRequest,
    PubsubMessage,
    PullRequest,
    PullResponse,
    ReceivedMessage,
)


@dataclass
class Lease:
    message_id: str
    deadline: float


@dataclass
class PubSubServer:
    """One subscription's messages behind a gRPC server on 127.0.0.1 (`host` is what PUBSUB_EMULATOR_HOST takes)."""

    subscription: str
    ack_deadline: float = 10.0
    per_pull: int = 1_000
    clock: Callable[[], float] = time.monotonic
    messages: dict[str, PubsubMessage] = field(default_factory=dict)  # not yet acknowledged, in publish order
    leases: dict[str, Lease] = field(default_factory=dict)  # ack id -> the lease it names
    deliveries: list[str] = field(default_factory=list)  # message ids, one per delivery
    acknowledged: list[str] = field(default_factory=list)  # message ids, in acknowledgement order
    host: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", {
            "Pull": grpc.unary_unary_rpc_method_handler(
                self._pull, request_deserializer=PullRequest.deserialize, response_serializer=PullResponse.serialize),
            "Acknowledge": grpc.unary_unary_rpc_method_handler(
                self._acknowledge, request_deserializer=AcknowledgeRequest.deserialize,
                response_serializer=empty_pb2.Empty.SerializeToString),
            "ModifyAckDeadline": grpc.unary_unary_rpc_method_handler(
                self._modify_ack_deadline, request_deserializer=ModifyAckDeadlineRequest.deserialize,
                response_serializer=empty_pb2.Empty.SerializeToString),
        })])
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.host = f"127.0.0.1:{port}"

    def start(self) -> PubSubServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def publish(self, data: bytes, **attributes: str) -> str:
        message_id = str(next(self._ids))
        with self._lock:
            self.messages[message_id] = PubsubMessage(data=data, attributes=attributes, message_id=message_id)
        return message_id

    def outstanding(self) -> list[str]:
        """Message ids not yet acknowledged."""
        with self._lock:
            return list(self.messages)

    def _check(self, subscription: str, context: grpc.ServicerContext) -> None:
        if subscription != self.subscription:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={subscription.split('/')[-1]}).")

    def _pull(self, request: PullRequest, context: grpc.ServicerContext) -> PullResponse:
        self._check(request.subscription, context)
        if request.max_messages <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be positive")
        now = self.clock()
        with self._lock:
            leased = {lease.message_id for lease in self.leases.values() if lease.deadline > now}
            received: list[ReceivedMessage] = []
            for message_id, message in self.messages.items():
                if len(received) == min(request.max_messages, self.per_pull):
                    break
                if message_id in leased:
                    continue
                ack_id = f"ack-{message_id}-{len(self.deliveries)}"
                self.leases[ack_id] = Lease(message_id, now + self.ack_deadline)
                self.deliveries.append(message_id)
                received.append(ReceivedMessage(ack_id=ack_id, message=message))
        return PullResponse(received_messages=received)

    def _acknowledge(self, request: AcknowledgeRequest, context: grpc.ServicerContext) -> Any:
        self._check(request.subscription, context)
        now = self.clock()
        with self._lock:
            for ack_id in request.ack_ids:
                lease = self.leases.pop(ack_id, None)
                # an ended lease acknowledges nothing: the message may be out again under another ack id
                if lease is not None and lease.deadline > now and lease.message_id in self.messages:
                    del self.messages[lease.message_id]
                    self.acknowledged.append(lease.message_id)
        return empty_pb2.Empty()

    def _modify_ack_deadline(self, request: ModifyAckDeadlineRequest, context: grpc.ServicerContext) -> Any:
        self._check(request.subscription, context)
        now = self.clock()
        with self._lock:
            for ack_id in request.ack_ids:
                lease = self.leases.get(ack_id)
                if lease is not None and lease.deadline > now:
                    lease.deadline = now + request.ack_deadline_seconds
        return empty_pb2.Empty()
