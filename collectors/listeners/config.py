"""What the listeners are told: where to listen, and the bounds that keep memory flat under a flood."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Literal

from collectors.errors import CollectorError

ListenerKind = Literal["syslog-udp", "syslog-tcp", "syslog-tls", "relp", "relp-tls", "http", "https"]

# Defaults need no root: unprivileged ports beside the well-known ones (514, 6514, 2514).
DEFAULT_LISTENERS: dict[ListenerKind, str] = {
    "syslog-udp": "127.0.0.1:5514",
    "syslog-tcp": "127.0.0.1:5514",
    "syslog-tls": "127.0.0.1:6514",
    "relp": "127.0.0.1:2514",
    "http": "127.0.0.1:8514",
}


class ListenAddressError(CollectorError):
    """A listen address is not HOST:PORT."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """`HOST:PORT`, `[v6]:PORT` or `:PORT` (all addresses); port 0 picks a free port."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ListenAddressError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5514, [::1]:5514, 0.0.0.0:514)")
        host = host.strip("[]") or "0.0.0.0"
        if ":" in host:
            try:
                ip_address(host)
            except ValueError:
                raise ListenAddressError(f"{text!r}: {host!r} is not an address") from None
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Limits:
    """Bounds per message, connection and request. Every buffer a sender can fill is one of these."""

    max_message_bytes: int = 64 * 1024  # syslog over UDP/TCP/TLS (syslog-ng's default log_msg_size)
    max_relp_data_bytes: int = 128 * 1024  # librelp's default maximum DATALEN
    # one read from a connection, and so the largest batch it yields (a flood in 64 KiB reads spent about a
    # tenth more CPU a message: four times the reads, appends and spool frames)
    read_bytes: int = 256 * 1024
    max_connections: int = 1024  # per stream listener; more are closed at once
    # reads being framed and appended at once, over all stream connections: one read of tiny lines makes
    # ~100x its size in records, so this, not the connection count, bounds that memory
    batches_in_flight: int = 16
    udp_pending_records: int = 50_000  # datagrams waiting for the spool; more are dropped and counted
    udp_pending_bytes: int = 32 * 1024 * 1024
    http_max_body_bytes: int = 8 * 1024 * 1024  # after decompression (a gzip bomb stops here)
    http_max_record_bytes: int = 1024 * 1024
    http_concurrent_bodies: int = 8  # requests read at once; the others wait, unread (TCP pushes back)
    http_max_records: int = 100_000  # per request
    spool_retry_seconds: float = 0.5  # how often a stream whose spool was full tries again
    retry_after_seconds: int = 5  # HTTP 429 Retry-After


@dataclass
class ListenerPlan:
    """Which listeners to run, each kind on any number of addresses."""

    addresses: dict[ListenerKind, list[ListenAddress]] = field(default_factory=dict)

    @classmethod
    def of(cls, given: dict[ListenerKind, list[str]]) -> ListenerPlan:
        """The addresses given; when none at all is, the defaults."""
        chosen = {kind: texts for kind, texts in given.items() if texts}
        if not chosen:
            chosen = {kind: [text] for kind, text in DEFAULT_LISTENERS.items()}
        return cls({kind: [ListenAddress.parse(text) for text in texts] for kind, texts in chosen.items()})

    def needs_tls(self) -> bool:
        return bool(self.addresses.get("syslog-tls") or self.addresses.get("relp-tls") or self.addresses.get("https"))
