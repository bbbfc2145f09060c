"""A local AMQP 1.0 server of what the Event Hubs service documents and the `azure-eventhub` consumer uses, for the
pull tests (no registry here ships an Event Hubs server: Microsoft's emulator is a container image). It is built on
Apache Qpid Proton (`python-qpid-proton`, an AMQP 1.0 engine), so the framing, SASL, sessions, links, credit and
settlement are a real peer's; the Event Hubs layer on top is:

- SASL ANONYMOUS (what the client uses: it authorises with a claims-based token; proton's built-in SASL offers
  no PLAIN server without Cyrus SASL), over plain TCP as the Event Hubs emulator serves it
  (`UseDevelopmentEmulator=true` in the connection string);
- `$cbs`: the `put-token` request (a `servicebus.windows.net:sastoken` whose HMAC-SHA256 signature is checked
  against the shared access key; 202, or 401 for a bad signature or another key name);
- `$management`: `READ` of `com.microsoft:eventhub` (name, created_at, partition_count, partition_ids) and of
  `com.microsoft:partition` (begin/last enqueued sequence number, last offset and time, is_partition_empty);
  404 for another event hub or partition;
- receiver links on `<hub>/ConsumerGroups/<group>/Partitions/<id>`, whose `apache.org:selector-filter:string`
  filter (`amqp.annotation.x-opt-offset > '123'`, `>=`, on the offset, sequence number or enqueued time; the
  offset `-1` is the start and `@latest` the end) says where to start; each event goes out as a message with one
  data section and the annotations x-opt-sequence-number, x-opt-offset (string) and x-opt-enqueued-time, as far
  as the link's credit allows. An unknown hub, group or partition is refused with `amqp:not-found`.

The client's decoder needs every field of a performative (see `padded`): the client connects to a small relay
that passes its bytes to proton unchanged and proton's frames back padded. When the client closes a management
session it detaches a link after ending the session; proton answers with `amqp:not-allowed` ("no such channel")
and logs it, on a connection the client is closing anyway.

Not served: publishing over AMQP, epochs (owner level) and their `com.microsoft:epoch` contest, the
last-enqueued-event runtime metrics, georeplication, idle-timeout enforcement, TLS and AMQP over WebSockets.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from proton import Condition, Described, Endpoint, Message, int32, symbol, timestamp
from proton.handlers import MessagingHandler
from proton.reactor import Container

SELECTOR = symbol("apache.org:selector-filter:string")
_SELECTOR = re.compile(r"amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time) (>=|>) '([^']*)'")


@dataclass
class Stored:
    sequence: int
    offset: int
    enqueued_ms: int
    body: bytes


@dataclass
class Partition:
    events: list[Stored] = field(default_factory=list)
    next_offset: int = 0


# Every field of each performative, by descriptor code (AMQP 1.0 part 2.7 and 5.3): the frames proton writes end
# at their last non-null field, as the specification allows (part 1.4), but azure-eventhub's own AMQP decoder
# (`_pyamqp`) reads fields by position without padding (a transfer's payload is taken as the field after the
# eleventh), so the server's frames reach the client with every field written.
_FIELDS = {0x10: 10, 0x11: 8, 0x12: 14, 0x13: 11, 0x14: 11, 0x15: 6, 0x16: 3, 0x17: 1, 0x18: 1,
           0x40: 1, 0x41: 3, 0x42: 1, 0x43: 1, 0x44: 2}


def padded(frame: bytes) -> bytes:
    """The frame with its performative's list written in full (list32, trailing nulls); payload unchanged."""
    offset = frame[4] * 4
    body = frame[offset:]
    if not body or body[0] != 0x00:
        return frame  # an empty (heartbeat) frame
    if body[1] == 0x53:
        code, at = body[2], 3
    elif body[1] == 0x80:
        code, at = int.from_bytes(body[2:10], "big"), 10
    else:
        return frame
    constructor = body[at]
    if constructor == 0x45:
        count, content, rest = 0, b"", body[at + 1:]
    elif constructor == 0xC0:
        size, count = body[at + 1], body[at + 2]
        content, rest = body[at + 3:at + 2 + size], body[at + 2 + size:]
    elif constructor == 0xD0:
        size, count = int.from_bytes(body[at + 1:at + 5], "big"), int.from_bytes(body[at + 5:at + 9], "big")
        content, rest = body[at + 9:at + 5 + size], body[at + 5 + size:]
    else:
        return frame
    missing = _FIELDS.get(code, count) - count
    if missing <= 0 and constructor == 0xD0:
        return frame
    content += b"\x40" * max(missing, 0)
    listed = (b"\xd0" + (4 + len(content)).to_bytes(4, "big") + (count + max(missing, 0)).to_bytes(4, "big")
              + content)
    new_body = body[:at] + listed + rest
    return (offset + len(new_body)).to_bytes(4, "big") + frame[4:offset] + new_body


class _Padder:
    """Between the client and proton: the client's bytes as they are, proton's frames `padded`."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="eventhub-padder", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
            self.sockets += [client, backend]
            threading.Thread(target=self._copy, args=(client, backend), daemon=True).start()
            threading.Thread(target=self._pad, args=(backend, client), daemon=True).start()

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        _Padder._shut(source, sink)

    @staticmethod
    def _pad(source: socket.socket, sink: socket.socket) -> None:
        buffer = b""
        try:
            while chunk := source.recv(65536):
                buffer += chunk
                out = []
                while True:
                    if buffer[:4] == b"AMQP" and len(buffer) >= 8:  # a protocol header
                        out.append(buffer[:8])
                        buffer = buffer[8:]
                    elif len(buffer) >= 8 and buffer[:4] != b"AMQP":
                        size = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < size:
                            break
                        out.append(padded(buffer[:size]))
                        buffer = buffer[size:]
                    else:
                        break
                sink.sendall(b"".join(out))
        except OSError:
            pass
        _Padder._shut(source, sink)

    @staticmethod
    def _shut(*sockets: socket.socket) -> None:
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self._shut(*self.sockets)
        for each in self.sockets:
            each.close()


class EventHubServer:
    """One namespace with one event hub of `partitions`, its consumer groups, and one shared access key."""

    def __init__(self, hub: str, *, partitions: tuple[str, ...] = ("0", "1"),
                 consumer_groups: tuple[str, ...] = ("$Default",), key_name: str = "listen",
                 key: str = "test-key") -> None:
        self.hub, self.consumer_groups, self.key_name, self.key = hub, consumer_groups, key_name, key
        self.partitions = {partition: Partition() for partition in partitions}
        self.created_ms = int(time.time() * 1000)
        self.lock = threading.Lock()
        self.port = self.backend_port = 0
        self._padder: _Padder | None = None
        self.tokens: list[str] = []  # audiences of accepted put-token requests
        self.refused_tokens: list[str] = []
        self.management_reads: list[tuple[str, str | None]] = []
        self.selectors: list[tuple[str, str, str]] = []  # (group, partition, filter) of every receiver link
        self.sent: list[tuple[str, int]] = []  # (partition, sequence number) of every message sent
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def connection_string(self) -> str:
        return (f"Endpoint=sb://127.0.0.1:{self.port};SharedAccessKeyName={self.key_name};"
                f"SharedAccessKey={self.key};UseDevelopmentEmulator=true")

    def publish(self, partition: str, body: bytes, *, enqueued_ms: int | None = None) -> Stored:
        with self.lock:
            stored = self.partitions[partition]
            event = Stored(len(stored.events), stored.next_offset,
                           int(time.time() * 1000) if enqueued_ms is None else enqueued_ms, body)
            stored.events.append(event)
            stored.next_offset += max(len(body), 1)  # offsets grow with the bytes stored, as the service's do
            return event

    def start(self) -> EventHubServer:
        handler = _Handler(self)
        self._thread = threading.Thread(target=Container(handler).run, name="eventhub-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the AMQP server did not start")
        self._padder = _Padder(self.backend_port)
        self.port = self._padder.port
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._padder is not None:
            self._padder.close()
        if self._thread is not None:
            self._thread.join(10)

    # what the service answers -------------------------------------------------------------------------------

    def events_after(self, partition: str, selector: str) -> int:
        """The index of the first event of `partition` the filter lets through."""
        match = _SELECTOR.fullmatch(selector)
        if match is None:
            raise ValueError(f"unsupported selector {selector!r}")
        field_name, operator, value = match.groups()
        events = self.partitions[partition].events
        if field_name == "offset" and value == "@latest":
            return len(events)
        bound = int(value)

        def key(event: Stored) -> int:
            return {"offset": event.offset, "sequence-number": event.sequence,
                    "enqueued-time": event.enqueued_ms}[field_name]

        for index, event in enumerate(events):
            if key(event) > bound or (operator == ">=" and key(event) == bound):
                return index
        return len(events)

    def check_token(self, token: str, audience: str) -> bool:
        """A SharedAccessSignature sr=..&sig=..&se=..&skn=.. signed with this server's key, for this namespace."""
        if not token.startswith("SharedAccessSignature "):
            return False
        fields = dict(urllib.parse.parse_qsl(token[len("SharedAccessSignature "):]))
        resource, expiry = fields.get("sr", ""), fields.get("se", "0")
        signed = f"{urllib.parse.quote_plus(resource)}\n{expiry}".encode()
        expected = base64.b64encode(hmac.new(self.key.encode(), signed, hashlib.sha256).digest()).decode()
        return (fields.get("skn") == self.key_name and hmac.compare_digest(fields.get("sig", ""), expected)
                and int(expiry) > time.time())

    def put_token(self, request: Message) -> tuple[int, str]:
        properties: dict[str, Any] = request.properties or {}
        audience, token = str(properties.get("name", "")), request.body
        if isinstance(token, bytes):
            token = token.decode()
        if properties.get("operation") != "put-token" or not isinstance(token, str):
            return 400, "Bad request"
        if not self.check_token(token, audience):
            self.refused_tokens.append(audience)
            return 401, "InvalidSignature: The token has an invalid signature."
        self.tokens.append(audience)
        return 202, "Accepted"

    def management(self, request: Message) -> tuple[int, str, Any]:
        properties: dict[str, Any] = request.properties or {}
        kind, name, partition = properties.get("type"), properties.get("name"), properties.get("partition")
        self.management_reads.append((str(kind), None if partition is None else str(partition)))
        if properties.get("operation") != "READ":
            return 400, "The operation is not supported.", None
        if name != self.hub:
            return 404, f"The messaging entity '{name}' could not be found.", None
        with self.lock:
            if kind == "com.microsoft:eventhub":
                return 200, "OK", {"name": self.hub, "type": "com.microsoft:eventhub",
                                   "created_at": timestamp(self.created_ms), "partition_count": len(self.partitions),
                                   "partition_ids": list(self.partitions)}
            if kind == "com.microsoft:partition":
                if partition not in self.partitions:
                    return 404, f"The partition '{partition}' could not be found.", None
                events = self.partitions[partition].events
                last = events[-1] if events else None
                return 200, "OK", {
                    "name": self.hub, "type": "com.microsoft:partition", "partition": partition,
                    "begin_sequence_number": 0, "last_enqueued_sequence_number": last.sequence if last else -1,
                    "last_enqueued_offset": str(last.offset if last else -1),
                    "last_enqueued_time_utc": timestamp(last.enqueued_ms if last else 0),
                    "is_partition_empty": last is None}
        return 400, f"The management type '{kind}' is not supported.", None


class _Receiving:
    """A client's receiver link on a partition: the next event to send."""

    def __init__(self, partition: str, position: int) -> None:
        self.partition, self.position = partition, position


class _Handler(MessagingHandler):
    def __init__(self, server: EventHubServer) -> None:
        super().__init__(prefetch=100, auto_accept=True, auto_settle=True)
        self.server = server
        self.receiving: dict[Any, _Receiving] = {}
        self.refusing: dict[Any, str] = {}

    def on_start(self, event: Any) -> None:
        acceptor = event.container.listen("127.0.0.1:0")
        self.acceptor = acceptor
        self.server.backend_port = acceptor._selectable._delegate.getsockname()[1]
        event.container.schedule(0.05, self)
        self.server._ready.set()

    def on_timer_task(self, event: Any) -> None:
        if self.server._stopping.is_set():
            self.acceptor.close()
            event.container.stop()
            return
        for link in list(self.receiving):
            self._pump(link)
        event.container.schedule(0.05, self)

    def on_connection_bound(self, event: Any) -> None:
        sasl = event.transport.sasl()
        sasl.allowed_mechs("ANONYMOUS PLAIN")

    def on_link_opening(self, event: Any) -> None:
        link = event.link
        source, target = link.remote_source.address, link.remote_target.address
        link.source.address, link.target.address = source, target
        if link.is_receiver:  # the client's request link to $cbs or $management
            if target not in ("$cbs", "$management"):
                self._refuse(link, f"The node '{target}' does not accept messages here.")
            return
        if source in ("$cbs", "$management"):
            return
        path = source or ""
        if "://" in path:  # the client names the entity by its full address, amqps://<namespace>/<path>
            path = urllib.parse.urlsplit(path).path.lstrip("/")
        parts = path.split("/")
        if len(parts) != 5 or parts[1] != "ConsumerGroups" or parts[3] != "Partitions":
            self._refuse(link, f"The messaging entity '{source}' could not be found.")
            return
        hub, group, partition = parts[0], parts[2], parts[4]
        known = self.server.partitions
        if hub != self.server.hub or group not in self.server.consumer_groups or partition not in known:
            self._refuse(link, f"The messaging entity '{source}' could not be found.")
            return
        data = link.remote_source.filter
        data.rewind()
        filters = data.get_object() if data.next() else {}
        selector = filters.get(SELECTOR)
        value = selector.value if isinstance(selector, Described) else selector
        expression = value.decode() if isinstance(value, bytes) else str(value or "")
        expression = expression or "amqp.annotation.x-opt-offset > '@latest'"
        link.source.filter.put_object({SELECTOR: Described(SELECTOR, expression)})
        with self.server.lock:
            self.server.selectors.append((group, partition, expression))
            self.receiving[link] = _Receiving(partition, self.server.events_after(partition, expression))

    def _refuse(self, link: Any, description: str) -> None:
        """Attached (with no source: there is no such node) and detached at once with the reason."""
        link.source.address = None
        self.refusing[link] = description

    def on_link_opened(self, event: Any) -> None:
        description = self.refusing.pop(event.link, None)
        if description is not None:
            event.link.condition = Condition("amqp:not-found", description)
            event.link.close()

    def on_sendable(self, event: Any) -> None:
        if event.link in self.receiving:
            self._pump(event.link)

    def _pump(self, link: Any) -> None:
        if not link.state & Endpoint.LOCAL_ACTIVE or not link.state & Endpoint.REMOTE_ACTIVE:
            if link.state & Endpoint.REMOTE_CLOSED:
                del self.receiving[link]
            return
        receiving = self.receiving[link]
        with self.server.lock:
            events = self.server.partitions[receiving.partition].events
            while link.credit > 0 and receiving.position < len(events):
                stored = events[receiving.position]
                message = Message(body=stored.body, inferred=True, annotations={
                    symbol("x-opt-sequence-number"): stored.sequence, symbol("x-opt-offset"): str(stored.offset),
                    symbol("x-opt-enqueued-time"): timestamp(stored.enqueued_ms)})
                delivery = link.send(message)
                if link.snd_settle_mode == link.SND_SETTLED:
                    delivery.settle()
                receiving.position += 1
                self.server.sent.append((receiving.partition, stored.sequence))

    def on_link_closing(self, event: Any) -> None:
        self.receiving.pop(event.link, None)

    def on_message(self, event: Any) -> None:
        request, node = event.message, event.link.target.address
        if node == "$cbs":
            status, description = self.server.put_token(request)
            body: Any = None
        else:
            status, description, body = self.server.management(request)
        reply = Message(body=body, correlation_id=request.id, properties={
            "status-code": int32(status), "status-description": description})
        link = event.connection.link_head(Endpoint.LOCAL_ACTIVE)
        while link is not None:
            if link.session == event.session and link.is_sender and link.source.address == node:
                link.send(reply)
                return
            link = link.next(Endpoint.LOCAL_ACTIVE)

