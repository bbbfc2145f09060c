"""Event stores: one interface, an embedded Parquet lake and Elasticsearch."""

from citysoc.store.base import Arrival, EventStore, WriteResult, get_store_class, register_store
from citysoc.store.parquet import ParquetEventStore

__all__ = ["Arrival", "EventStore", "ParquetEventStore", "WriteResult", "get_store_class", "register_store"]
