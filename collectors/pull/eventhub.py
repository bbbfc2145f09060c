"""Azure logs (activity, Entra sign-in and audit, any diagnostic setting) from an Event Hub, with the official
`azure-eventhub` consumer client and a checkpoint store of our own: on local disk (`FileCheckpointStore`), or in
a database shared by several pullers (`SOC_PULL_DATABASE_URL`: `collectors.pull.eventhub_db`).

Each received event is one record (its body, usually the `{"records": [...]}` envelope Azure Monitor writes);
a partition's batch is spooled, then `partition_context.update_checkpoint` records its last offset and sequence
number in the store, durably. The SDK starts each partition after its checkpoint, so a crash before that
write receives the batch again and the store keeps it once. A poll receives until no partition has had
an event for `idle_seconds` (default 10) twice over, then closes the client; before its first event it also
allows `connect_seconds` (default 15) for connecting and claiming the partitions. Credential: a connection
string of a shared access policy with the Listen right only, on the event hub (or an Entra app with "Azure Event
Hubs Data Receiver").

No Event Hubs server is available from the package registries here (Microsoft's emulator is a container
image): the tests run this puller's real client against a local AMQP 1.0 server of the documented service
(`tests/collectors/eventhub_server.py`, on Qpid Proton) through an emulator connection string
(`UseDevelopmentEmulator=true`: plain AMQP to the endpoint's host and port).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from azure.eventhub import CheckpointStore, EventData

from citysoc.store.durable import make_dirs_durably, replace_atomically
from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller
from collectors.records import RawRecord

_KEYS = ("fully_qualified_namespace", "eventhub_name", "consumer_group", "partition_id")
MAX_BATCH = 300
CONNECT_SECONDS = 15.0  # default of the `connect_seconds` setting


class FileCheckpointStore(CheckpointStore):
    """Partition ownership and checkpoints in one JSON file, replaced atomically at every change. Ownership
    follows the SDK's rule: a claim succeeds for a partition nobody owns, or with the etag last read. Each claim
    records the claiming process; one whose process has ended is listed as unowned (`_released_if_dead`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_dirs_durably(path.parent)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            document: dict[str, dict[str, dict[str, Any]]] = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"ownership": {}, "checkpoints": {}}
        return document

    def _write(self, document: dict[str, Any]) -> None:
        replace_atomically(self.path, json.dumps(document, sort_keys=True).encode())

    @staticmethod
    def _key(entry: dict[str, Any]) -> str:
        return "/".join(str(entry[name]) for name in _KEYS)

    @staticmethod
    def _prefix(namespace: str, eventhub: str, group: str) -> str:
        return f"{namespace}/{eventhub}/{group}/"

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                       **kwargs: Any) -> Iterable[dict[str, Any]]:
        prefix = self._prefix(fully_qualified_namespace, eventhub_name, consumer_group)
        with self._lock:
            return [_released_if_dead(dict(value)) for key, value in self._read()["ownership"].items()
                    if key.startswith(prefix)]

    def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> Iterable[dict[str, Any]]:
        claimed = []
        with self._lock:
            document = self._read()
            for ownership in ownership_list:
                key = self._key(ownership)
                held = document["ownership"].get(key)
                if held is not None and ownership.get("etag") != held.get("etag"):
                    continue  # someone else changed it since the claimant read it
                entry = {**ownership, "etag": str(uuid.uuid4()), "last_modified_time": time.time(), "pid": os.getpid()}
                document["ownership"][key] = entry
                claimed.append(dict(entry))
            self._write(document)
        return claimed

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        with self._lock:
            document = self._read()
            document["checkpoints"][self._key(checkpoint)] = dict(checkpoint)
            self._write(document)

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                         **kwargs: Any) -> Iterable[dict[str, Any]]:
        prefix = self._prefix(fully_qualified_namespace, eventhub_name, consumer_group)
        with self._lock:
            return [dict(value) for key, value in self._read()["checkpoints"].items() if key.startswith(prefix)]


def _released_if_dead(ownership: dict[str, Any]) -> dict[str, Any]:
    """An ownership claimed by a process of this machine that no longer runs (a puller killed before it could
    give its partitions up) as unowned: the SDK claims unowned partitions at once, where a live-looking claim
    would keep a restarted puller off them until the claim expires (6 load-balancing intervals, 180 s)."""
    pid = ownership.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and ownership.get("owner_id"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            ownership["owner_id"] = ""
        except PermissionError:
            pass  # a process of another user holds that pid: it runs
    return ownership


def event_records(events: Iterable[EventData], *, eventhub: str, partition: str,
                  record: Any) -> tuple[list[RawRecord], list[tuple[RawRecord, str]]]:
    """One record per event (its body bytes); an event without a data body is dead-lettered."""
    records: list[RawRecord] = []
    dead: list[tuple[RawRecord, str]] = []
    for event in events:
        origin = f"eventhub {eventhub} partition {partition} sequence {event.sequence_number}"
        try:
            body = b"".join(event.body)  # type: ignore[arg-type]  # a data body iterates over bytes
        except (TypeError, ValueError) as error:
            dead.append((record(str(event).encode(), origin), f"the event has no data body ({error})"))
            continue
        (records.append(record(body, origin)) if body.strip() else
         dead.append((record(body, origin), "the event's body is empty")))
    return records, dead


@register_puller
class EventHubPuller(Puller):
    kind = "azure-eventhub"
    required_settings = ("connection_string", "eventhub", "consumer_group")
    secret_settings = ("connection_string",)

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        from azure.eventhub import EventHubConsumerClient

        database = (os.environ if self.environ is None else self.environ).get("SOC_PULL_DATABASE_URL")
        store: CheckpointStore
        if database:  # shared by several pullers, which balance the partitions between them
            from collectors.pull.eventhub_db import DatabaseCheckpointStore

            store = DatabaseCheckpointStore(database)
        elif self.state_dir is None:
            raise PullError("an Event Hub pull needs a checkpoint directory", where=self.source.where)
        else:
            store = FileCheckpointStore(self.state_dir / f"source-{self.source.id}-eventhub.json")
        eventhub = self.source.setting("eventhub")
        client = EventHubConsumerClient.from_connection_string(
            self.secret("connection_string"), consumer_group=self.source.setting("consumer_group"),
            eventhub_name=eventhub, checkpoint_store=store)
        handed: queue.Queue[tuple[Any, list[EventData], threading.Event]] = queue.Queue(maxsize=1)
        stopping = threading.Event()
        idle = float(self.source.setting("idle_seconds", 10))
        connect = float(self.source.setting("connect_seconds", CONNECT_SECONDS))
        errors: list[str] = []

        def on_error(context: Any, error: Exception) -> None:
            # the client retries by itself; a pull that received nothing says why instead of "caught up"
            partition = f"partition {context.partition_id}: " if context is not None else ""
            errors.append(f"{partition}{str(error).splitlines()[0]}")

        def on_batch(context: Any, events: list[EventData]) -> None:
            if not events or stopping.is_set():
                return
            done = threading.Event()
            handed.put((context, events, done))
            while not done.wait(0.5) and not stopping.is_set():
                pass

        receiver = threading.Thread(target=client.receive_batch, name=f"eventhub-{self.source.id}", kwargs={
            "on_event_batch": on_batch, "on_error": on_error, "max_batch_size": MAX_BATCH, "max_wait_time": idle,
            "starting_position": "-1"}, daemon=True)
        receiver.start()
        received = False
        try:
            while True:
                quiet_since = time.monotonic()
                while True:
                    try:
                        context, events, done = handed.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if errors and not received:
                            raise PullError(f"the event hub could not be read: {errors[0]}",
                                            where=self.source.where) from None
                        # caught up once no partition had an event for a while (the first wait also covers
                        # connecting and claiming the partitions)
                        if time.monotonic() - quiet_since > idle * 2 + (0 if received else connect):
                            return
                received = True
                records, dead = event_records(events, eventhub=eventhub, partition=context.partition_id,
                                              record=self.record)

                def acknowledge(context: Any = context, last: EventData = events[-1],
                                done: threading.Event = done) -> None:
                    context.update_checkpoint(last)
                    done.set()

                yield PullBatch(records, acknowledge=acknowledge, dead=dead)
        finally:
            stopping.set()
            client.close()
            receiver.join(timeout=30)
            close = getattr(store, "close", None)
            if close is not None:
                close()
