"""The event-store extension point: a small ABC plus a name -> class registry.

Every read and write of events goes through an `EventStore`; only the store knows how events are laid
out (folders of a Parquet lake, data streams of Elasticsearch). Readers ask for one dataset, optionally
some tenants, within a time window of event time `[since, until)`.

Continuous detection also asks what is new by arrival, not by event time: a store keeps an arrival order
and answers with integer marks in it (`arrival_watermark`, `arrivals`). The Parquet lake numbers its
committed writes; Elasticsearch uses `event.ingested` as its final pipeline sets it, in microseconds (less a
slack for bulk requests in flight: `citysoc.store.elastic`).
Consumers register how far they have read (`set_consumer_cursor`), so that maintenance (compaction)
never makes unread events disappear from, or old events reappear in, what is new.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from citysoc.errors import EventStoreError
from citysoc.schema import ARROW_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Arrival:
    """What arrived for one tenant and dataset between two arrival marks: how many events, and the range of
    their event times (`first_us`..`last_us`, microseconds since the epoch, both included)."""

    dataset: str
    tenant: str
    first_us: int
    last_us: int
    events: int


@dataclass(frozen=True)
class WriteResult:
    """What a write did: events stored and events skipped because their id was already stored."""

    stored: int
    duplicates: int

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.stored + other.stored, self.duplicates + other.duplicates)


class EventStore(ABC):
    """Stores ECS events per tenant and dataset; writing an event whose `event.id` is stored is a no-op.

    An event id covers the event's time (`@timestamp`), so a store may key it by time and id, as the Parquet
    lake's index does and as Elasticsearch's time-based backing indices do: the same id given again with
    another `@timestamp` is then another event."""

    name: ClassVar[str]

    @abstractmethod
    def write(self, *, tenant: str, dataset: str, events: Iterable[Mapping[str, Any]]) -> WriteResult:
        """Store the events (ECS documents with `@timestamp` and `event.id`)."""

    def write_table(self, *, tenant: str, dataset: str, table: pa.Table) -> WriteResult:
        """Store an Arrow table of events (`citysoc.schema.ARROW_SCHEMA`); what the collectors hand over. A store
        that writes documents one by one takes the table's rows."""
        return self.write(tenant=tenant, dataset=dataset, events=table.to_pylist())

    def compact(self, dataset: str | None = None, *, min_files: int = 8) -> int:
        """Merge small files (a store with files); returns how many were merged away. Nothing to do by default."""
        return 0

    def recover(self) -> None:
        """Finish or discard what a crashed writer left (a store with its own write protocol). Nothing by default."""
        return None

    @abstractmethod
    def datasets(self) -> list[str]:
        """The datasets that hold events, sorted."""

    @abstractmethod
    def read(self, spark: SparkSession, dataset: str, *, since: datetime | None = None,
             until: datetime | None = None, tenants: Collection[str] | None = None) -> DataFrame | None:
        """A dataset's events as a Spark DataFrame, None when the store holds none in the window.

        The frame has the event schema's columns (`citysoc.schema.spark_schema`) plus `tenant` and
        `dataset` (strings: where the store filed each event; `organization.id` and `event.dataset`
        win where set). It holds at least every event of the tenants (all when None) with `@timestamp`
        in `[since, until)` (either bound may be None); it may hold others of the same days, which the
        reader filters out.
        """

    @abstractmethod
    def count(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
              tenants: Collection[str] | None = None) -> int:
        """Events of a dataset in `[since, until)` with an `event.id`, as `read` would give them."""

    @abstractmethod
    def events_by_id(self, *, tenant: str, ids: Collection[str],
                     windows: Collection[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
        """One tenant's stored events whose `event.id` is in `ids`, as ECS documents (`event.original` included,
        absent fields left out, times as ISO 8601 strings), at most one per id, in no particular order.

        `windows` are the `[since, until)` ranges of event time the events lie in (an alert's time bounds):
        the store reads only what covers them, and may return a listed event that lies outside them.
        Only the tenant's own partition (folder, data stream) is read, so an id that names another tenant's
        event finds nothing. What evidence (the case API's `/cases/{id}/evidence`) shows.
        """

    def fields_without_values(self, frame: DataFrame, fields: Collection[str]) -> frozenset[str]:
        """Those of `fields` (dotted leaf names of the event schema) that no event of `frame`, a frame `read`
        returned, has a value for, as far as the store knows without reading the events: a reader may take
        them as null instead of reading them. None by default (every field is read)."""
        return frozenset()

    @property
    def columns(self) -> tuple[str, ...]:
        """The top-level columns of the frames `read` returns (known without asking Spark)."""
        return (*ARROW_SCHEMA.names, "tenant", "dataset")

    # Arrival order: what continuous detection reads ------------------------------------------------

    @abstractmethod
    def arrival_watermark(self) -> int:
        """The mark of the newest stored event in arrival order (0 when none). Every event stored before this
        call returned has a mark at or below it, and is readable."""

    @abstractmethod
    def arrivals(self, *, after: int, upto: int, datasets: Collection[str] | None = None) -> list[Arrival]:
        """What arrived with marks in (`after`, `upto`]: the events' count and event-time range, per (dataset,
        tenant) and as finely as the store knows arrivals apart (the lake: per write), sorted by dataset and
        tenant. An event may be reported again in a later range (after maintenance), never lost."""

    @abstractmethod
    def set_consumer_cursor(self, name: str, mark: int) -> None:
        """Record that consumer `name` has handled everything up to `mark`; the store keeps what is after it
        reportable as new."""


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
