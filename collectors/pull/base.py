"""What every puller is: a source's settings in, batches of raw records with the checkpoint after each out.

A `Puller` is registered by source kind (`@register_puller`). `batches(checkpoint)` is one poll: it yields
`PullBatch`es in order, each with the records fetched and the whole checkpoint state once those records are
stored (or None when the batch moves no checkpoint), and an optional `acknowledge` for services that keep the
position themselves (an SQS delete, a Pub/Sub ack, an Event Hub checkpoint). The runner calls it only after
the spool holds the records and the checkpoint file is replaced, so a crash anywhere re-fetches, never skips.

Credentials are never part of a source's settings: a setting names where the secret is (`env:OKTA_TOKEN`,
`file:/run/secrets/okta`), resolved by `resolve_secret` when the puller starts.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from collectors.errors import CollectorError
from collectors.records import RawRecord

Checkpoint = dict[str, Any]


class PullError(CollectorError):
    """A pull cannot go on (a refused credential, a setting missing, an answer the protocol does not allow);
    `where` names the source. The runner logs it and tries the source again at its next poll."""


class SecretError(PullError):
    """A credential reference cannot be resolved (unset variable, unreadable file) or is not a reference."""


class ThrottledError(PullError):
    """The provider kept refusing with 429 (or its rate-limit answer) past the retries allowed."""


@dataclass(frozen=True)
class PullSource:
    """One registered pull source: who it belongs to, where its records go, and its kind's settings.

    `settings` holds only non-secret values and references to secrets (see `resolve_secret`)."""

    id: int
    tenant: str
    name: str
    kind: str
    parser: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    cloud_accounts: tuple[str, ...] = ()  # the accounts its CloudTrail records may name (as at the HTTP intake)

    @property
    def where(self) -> str:
        return f"source {self.tenant}/{self.name} ({self.kind})"

    def setting(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        value = self.settings.get(key, default)
        if required and (value is None or value == ""):
            raise PullError(f"the source has no {key!r} setting: add it with `soc sources add --setting "
                            f"{key}=...`", where=self.where)
        return value


@dataclass
class PullBatch:
    """Records fetched together, the checkpoint once they are stored, and what to tell the service then.

    `dead` are records the puller could not decode at all (an object that is not gzip, a message without
    data): they go to the dead letters with `reason`, never to the parser."""

    records: list[RawRecord]
    checkpoint: Checkpoint | None = None
    acknowledge: Callable[[], None] | None = None
    dead: list[tuple[RawRecord, str]] = field(default_factory=list)


def resolve_secret(reference: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret a reference names: `env:NAME` (an environment variable of the puller's process) or
    `file:/path` (a file's content, trailing newline removed). Anything else is refused: a credential is
    never stored with the source, only where to find it."""
    environ = os.environ if environ is None else environ
    scheme, _, name = reference.partition(":")
    if scheme == "env" and name:
        value = environ.get(name)
        if not value:
            raise SecretError(f"the environment variable {name} is not set in the puller's environment "
                              f"(the source refers to it as env:{name})", where=where)
        return value
    if scheme == "file" and name:
        try:
            return Path(name).read_text().rstrip("\n")
        except OSError as error:
            raise SecretError(f"cannot read the secret file {name}: {error.strerror or error}", where=where) from None
    raise SecretError("a credential setting must be a reference, env:NAME or file:/path, never the secret itself",
                      where=where)


def is_secret_reference(value: str) -> bool:
    scheme, _, name = value.partition(":")
    return scheme in ("env", "file") and bool(name)


class Puller(ABC):
    """Fetches one source's records from its provider (see the module doc)."""

    kind: ClassVar[str]
    #: settings holding secret references (checked to be references when the source is registered)
    secret_settings: ClassVar[tuple[str, ...]] = ()
    #: settings the kind needs
    required_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, source: PullSource, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] | None = None, sleep: Callable[[float], None] | None = None,
                 state_dir: Path | None = None) -> None:
        self.source = source
        self.state_dir = state_dir  # where a puller whose client keeps its own checkpoints puts them
        self.environ = environ
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep or time.sleep
        for key in self.required_settings:
            source.setting(key, required=True)

    def secret(self, key: str) -> str:
        return resolve_secret(self.source.setting(key, required=True), where=self.source.where, environ=self.environ)

    def optional_secret(self, key: str) -> str | None:
        reference = self.source.setting(key)
        return resolve_secret(reference, where=self.source.where, environ=self.environ) if reference else None

    def record(self, payload: bytes, origin: str) -> RawRecord:
        return RawRecord(payload, origin, self.clock())

    @abstractmethod
    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        """One poll from `checkpoint` (None: never pulled). Yields batches in order; stops when caught up."""

    def close(self) -> None:  # noqa: B027  (most pullers close their clients inside `batches`)
        """Release clients and connections."""


_PULLERS: dict[str, type[Puller]] = {}
P = TypeVar("P", bound=type[Puller])


def register_puller(cls: P) -> P:
    _PULLERS[cls.kind] = cls
    return cls


def get_puller(kind: str) -> type[Puller]:
    _load_all()
    try:
        return _PULLERS[kind]
    except KeyError:
        raise PullError(f"no puller for source kind {kind!r}; pulled kinds: {', '.join(sorted(_PULLERS))}") from None


def puller_kinds() -> list[str]:
    _load_all()
    return sorted(_PULLERS)


def _load_all() -> None:
    # imported here: each module needs its provider's client library, loaded only when pulls are used
    from collectors.pull import eventhub, github, m365, okta, pubsub, s3  # noqa: F401
