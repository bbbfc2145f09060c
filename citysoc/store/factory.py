"""The event store the settings choose (`SOC_EVENT_STORE`): the embedded lake, or Elasticsearch."""

from __future__ import annotations

from datetime import timedelta

from citysoc.deadletter import DeadLetterStore
from citysoc.errors import ConfigurationError
from citysoc.settings import Settings
from citysoc.store.base import EventStore
from citysoc.store.parquet import ParquetEventStore


def open_event_store(settings: Settings, *, dead_letters: DeadLetterStore | None = None) -> EventStore:
    """The lake under `$SOC_HOME`, or the Elasticsearch cluster at `SOC_ES_URL` (documents it refuses go to
    `dead_letters`, by default the dead-letter store under `$SOC_HOME`)."""
    if settings.event_store == "parquet":
        return ParquetEventStore(settings.events_dir)
    from citysoc.store.elastic import ElasticsearchEventStore, EsConnection

    if not settings.es_url:
        raise ConfigurationError("SOC_EVENT_STORE=elasticsearch needs SOC_ES_URL (e.g. https://es.example:9200) and "
                                 "SOC_ES_API_KEY, or SOC_ES_USERNAME and SOC_ES_PASSWORD")
    connection = EsConnection(url=settings.es_url, api_key=settings.es_api_key, username=settings.es_username,
                              password=settings.es_password, ca_certs=settings.es_ca_file)
    return ElasticsearchEventStore(connection, dead_letters=dead_letters or DeadLetterStore(settings.deadletter_dir),
                                   read_slices=settings.es_read_slices, page_size=settings.es_page_size,
                                   arrival_slack=timedelta(seconds=10))
