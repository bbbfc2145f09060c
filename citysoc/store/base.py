"""The event-store extension point: a small ABC plus a name -> class registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from citysoc.errors import EventStoreError


@dataclass(frozen=True)
class WriteResult:
    """What a write did: events stored and events skipped because their id was already stored."""

    stored: int
    duplicates: int

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.stored + other.stored, self.duplicates + other.duplicates)


class EventStore(ABC):
    """Stores ECS events of one tenant and dataset; writing an event whose `event.id` is stored is a no-op."""

    name: ClassVar[str]

    @abstractmethod
    def write(self, *, tenant: str, dataset: str, events: Iterable[Mapping[str, Any]]) -> WriteResult:
        """Store the events (ECS documents with `@timestamp` and `event.id`)."""


_REGISTRY: dict[str, type[EventStore]] = {}


def register_store(cls: type[EventStore]) -> type[EventStore]:
    """Class decorator: make a store selectable by its `name` in configuration."""
    _REGISTRY[cls.name] = cls
    return cls


def get_store_class(name: str) -> type[EventStore]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise EventStoreError(f"unknown event store {name!r}; known stores: {known}") from None
