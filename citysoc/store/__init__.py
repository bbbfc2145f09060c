"""Event stores: one interface, an embedded Parquet lake and Elasticsearch."""

from citysoc.store.base import EventStore, WriteResult, get_store_class, register_store
from citysoc.store.parquet import ParquetEventStore

__all__ = ["EventStore", "ParquetEventStore", "WriteResult", "get_store_class", "register_store"]
