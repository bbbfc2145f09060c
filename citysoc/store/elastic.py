"""The production event store: Elasticsearch data streams `logs-<dataset>-<tenant>` (`citysoc.store.es_layout`).

Writing uses the bulk helper (`helpers.streaming_bulk`) with `op_type: create` and `_id` = `event.id`: a replay
into the same backing index is a 409 version conflict, counted as a duplicate. A data stream rolls over to new
backing indices, where `_id` is not checked, so a write first asks which of its ids the stream already holds in
the batch's time range (a `terms` query, one per chunk), and skips those: a replay is a no-op after rollover too.
Documents Elasticsearch refuses (mapping, parsing) go to the dead-letter store with its reason; a 429 is retried
with exponential backoff by the helper (`max_retries`, `initial_backoff`), and what is still refused after that
(or a 5xx) fails the write with `EventStoreUnavailableError`, so the intake keeps the batch in its spool and
writes it again later (the ids make that a no-op for what did get stored).

Reading is Spark's Python data source (`citysoc.store.es_source`), arrival order is `event.ingested` as the final
pipeline sets it (milliseconds, as marks in microseconds), less `arrival_slack`: a document whose bulk request
is still in flight when the watermark is taken is stamped before it but not yet searchable.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import structlog
from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers
from pyspark.sql import DataFrame, SparkSession

from citysoc.deadletter import DeadLetter, DeadLetterStore
from citysoc.errors import EventStoreError
from citysoc.retention import DEFAULT_RETENTION, Retention
from citysoc.schema import ARROW_SCHEMA, DATASETS
from citysoc.store import es_layout, es_source
from citysoc.store.base import Arrival, EventStore, WriteResult, register_store
from citysoc.store.es_documents import bulk_outcome, events_table, hit_document, table_documents
from citysoc.store.es_source import SOURCE_NAME, ElasticsearchSource, time_range
from citysoc.tenancy import validate_tenant_id

log = structlog.get_logger(__name__)

CHUNK = 500  # documents per bulk request (the helper's default) and per replay check
MAX_RETRIES = 5  # 429s retried: 2, 4, 8, 16, 32 s of backoff before the write fails
INITIAL_BACKOFF = 2.0
MAX_BACKOFF = 60.0
EVENT_STREAMS = f"logs-*-*,-{es_layout.dataset_pattern(es_layout.ALERTS_DATASET)}"
#: Longest list of data streams put in a request's path (Elasticsearch's request line is at most 4 KB).
MAX_INDEX_EXPRESSION = 2000


class EventStoreUnavailableError(EventStoreError):
    """Elasticsearch could not take documents now (429 after the retries, or 5xx): nothing is lost, write
    them again later (the intake's spool does)."""


@dataclass(frozen=True)
class EsConnection:
    """How to reach the cluster; picklable, so Spark's executors connect with the same options."""

    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None

    def client(self) -> Elasticsearch:
        kwargs: dict[str, Any] = {}
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.username:
            kwargs["basic_auth"] = (self.username, self.password or "")
        if self.ca_certs:
            kwargs["ca_certs"] = self.ca_certs
        return Elasticsearch(self.url, **kwargs)

    def options(self) -> dict[str, str]:
        """The data source's connection options (`citysoc.store.es_source.connect`)."""
        given = {"url": self.url, "secret_api_key": self.api_key, "username": self.username, "password": self.password,
                 "ca_certs": self.ca_certs}
        return {key: value for key, value in given.items() if value}


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _micros(millis: float) -> int:
    return int(millis) * 1000


@register_store
class ElasticsearchEventStore(EventStore):
    """Events in Elasticsearch data streams, one per dataset and tenant."""

    name = "elasticsearch"

    def __init__(self, connection: EsConnection, *, dead_letters: DeadLetterStore | None = None,
                 read_slices: int = 2, page_size: int = 2000, arrival_slack: timedelta = timedelta(seconds=10),
                 max_retries: int = MAX_RETRIES, initial_backoff: float = INITIAL_BACKOFF,
                 client: Elasticsearch | None = None) -> None:
        self.connection = connection
        self.client = client or connection.client()
        self.dead_letters = dead_letters
        self.read_slices = read_slices
        self.page_size = page_size
        self.arrival_slack = arrival_slack
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self._shared_ready = False
        self._datasets_ready: set[str] = set()
        self._registered: set[int] = set()

    # --- layout -----------------------------------------------------------------------------------------

    def ensure_layout(self, datasets: Iterable[str] = DATASETS) -> None:
        """Put the pipeline, default ILM policy, component templates, the alerts template and an index template
        per dataset (idempotent: every call puts the current definitions)."""
        client = self.client
        client.ingest.put_pipeline(id=es_layout.INGESTED_PIPELINE, **_body(es_layout.ingested_pipeline()))
        client.ilm.put_lifecycle(name=es_layout.DEFAULT_POLICY, policy=es_layout.lifecycle_policy())
        client.cluster.put_component_template(name=es_layout.MAPPINGS_COMPONENT, **es_layout.mappings_component())
        client.cluster.put_component_template(name=es_layout.SETTINGS_COMPONENT, **es_layout.settings_component())
        client.indices.put_index_template(name=es_layout.ALERTS_TEMPLATE, **es_layout.alerts_template())
        self._shared_ready = True
        for dataset in datasets:
            self._ensure_dataset(dataset)

    def _ensure_dataset(self, dataset: str) -> None:
        if not self._shared_ready:
            self.ensure_layout(())
        if dataset not in self._datasets_ready:
            self.client.indices.put_index_template(name=es_layout.dataset_template_name(dataset),
                                                   **es_layout.dataset_template(dataset))
            self._datasets_ready.add(dataset)

    def ensure_tenant(self, tenant: str, retention: Retention = DEFAULT_RETENTION,
                      datasets: Iterable[str] = DATASETS) -> str:
        """What a member needs: its ILM policy (its contract's retention), an index template per dataset naming
        that policy (for `datasets` and every dataset stored already), and its read-only role with document-level
        security on `organization.id`. Returns the role's name. Idempotent; a changed contract puts the new
        policy, which ILM applies to the member's existing backing indices too. A stream of a dataset outside
        those (or written before the member was added) uses the default policy until the next call."""
        validate_tenant_id(tenant)
        self.ensure_layout(())
        self.client.ilm.put_lifecycle(name=es_layout.policy_name(tenant), policy=es_layout.lifecycle_policy(retention))
        for dataset in sorted({*datasets, *self.datasets()}):
            self._ensure_dataset(dataset)
            self.client.indices.put_index_template(name=es_layout.tenant_template_name(dataset, tenant),
                                                   **es_layout.tenant_template(dataset, tenant))
        role = es_layout.role_name(tenant)
        self.client.security.put_role(name=role, **es_layout.tenant_role(tenant))
        return role

    # --- writing ----------------------------------------------------------------------------------------

    def write(self, *, tenant: str, dataset: str, events: Iterable[Mapping[str, Any]]) -> WriteResult:
        return self.write_table(tenant=tenant, dataset=dataset, table=events_table(events))

    def write_table(self, *, tenant: str, dataset: str, table: pa.Table) -> WriteResult:
        """The table's rows as documents (`table_documents`: column by column), in chunks of `CHUNK`."""
        validate_tenant_id(tenant)
        stream = es_layout.stream_name(dataset, tenant)
        if not table.num_rows:
            return WriteResult(stored=0, duplicates=0)
        documents = table_documents(table, tenant=tenant, dataset=dataset)
        if not documents:
            return WriteResult(stored=0, duplicates=0)
        self._ensure_dataset(dataset)
        result = WriteResult(stored=0, duplicates=0)
        for start in range(0, len(documents), CHUNK):
            result += self._write_chunk(stream, tenant=tenant, dataset=dataset,
                                        documents=documents[start:start + CHUNK])
        return result

    def _write_chunk(self, stream: str, *, tenant: str, dataset: str,
                     documents: Sequence[dict[str, Any]]) -> WriteResult:
        stored_ids = self._stored_ids(stream, documents)
        fresh = [doc for doc in documents if doc["event"]["id"] not in stored_ids]
        by_id = {doc["event"]["id"]: doc for doc in fresh}
        stored = 0
        duplicates = len(documents) - len(fresh)
        letters: list[DeadLetter] = []
        unavailable: list[str] = []
        actions = ({"_op_type": "create", "_index": stream, "_id": doc["event"]["id"], "_source": doc} for doc in fresh)
        for ok, item in self._bulk(actions, stream):
            outcome = bulk_outcome(ok, item)
            if outcome.outcome == "stored":
                stored += 1
            elif outcome.outcome == "duplicate":
                duplicates += 1
            elif outcome.outcome == "rejected":
                letters.append(_letter(by_id.get(outcome.doc_id, {}), tenant=tenant, dataset=dataset,
                                       origin=f"{stream}/_doc/{outcome.doc_id}", reason=outcome.reason))
            else:
                unavailable.append(outcome.reason)
        if letters:
            if self.dead_letters is None:
                raise EventStoreError(f"{len(letters)} documents refused by Elasticsearch and no dead-letter store "
                                      f"to keep them: {letters[0].reason}")
            self.dead_letters.put(letters)
            log.warning("documents refused by Elasticsearch, kept as dead letters", tenant=tenant, dataset=dataset,
                        refused=len(letters), reason=letters[0].reason[:300])
        if unavailable:
            raise EventStoreUnavailableError(
                f"Elasticsearch did not take {len(unavailable)} of {len(fresh)} documents for {stream} after "
                f"{self.max_retries} retries: {unavailable[0]}; write them again later (stored ones are skipped)")
        return WriteResult(stored=stored, duplicates=duplicates)

    def _bulk(self, actions: Iterable[dict[str, Any]], target: str) -> Iterator[tuple[bool, dict[str, Any]]]:
        """`helpers.streaming_bulk` with the backoff on 429 (documents and whole requests); a request the cluster
        still refuses after it, or cannot be reached for, is `EventStoreUnavailableError`."""
        try:
            yield from helpers.streaming_bulk(
                self.client, actions, chunk_size=CHUNK, raise_on_error=False, raise_on_exception=True,
                max_retries=self.max_retries, initial_backoff=self.initial_backoff, max_backoff=MAX_BACKOFF,
                retry_on_status=(429,))
        except (ApiError, TransportError) as error:
            raise EventStoreUnavailableError(
                f"Elasticsearch did not take a bulk request for {target}: {error}; write it again later "
                "(what was stored is skipped)") from error

    def _stored_ids(self, stream: str, documents: Sequence[Mapping[str, Any]]) -> set[str]:
        """Ids of `documents` the stream holds already, in any backing index (within their time range)."""
        times = [doc["@timestamp"] for doc in documents]
        try:
            response = self.client.search(
                index=stream, size=len(documents), source={"includes": ["event.id"]}, track_total_hits=False,
                query={"bool": {"filter": [
                    {"terms": {"event.id": sorted({doc["event"]["id"] for doc in documents})}},
                    {"range": {"@timestamp": {"gte": min(times), "lte": max(times)}}}]}})
        except NotFoundError:  # the stream does not exist yet
            return set()
        return {hit["_source"]["event"]["id"] for hit in response["hits"]["hits"]}

    def write_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Alerts as ECS documents in the tenants' `logs-citysoc.alerts-<tenant>` streams, `_id` = alert id (a
        re-run writes nothing new). A refused alert raises: alerts are our own documents, never bad input."""
        if not alerts:
            return WriteResult(stored=0, duplicates=0)
        if not self._shared_ready:
            self.ensure_layout(())
        actions = ({"_op_type": "create", "_index": es_layout.alerts_stream(alert["organization"]["id"]),
                    "_id": alert["id"], "_source": alert_document(alert)} for alert in alerts)
        stored = duplicates = 0
        for ok, item in self._bulk(actions, "the alerts data streams"):
            outcome = bulk_outcome(ok, item)
            if outcome.outcome == "stored":
                stored += 1
            elif outcome.outcome == "duplicate":
                duplicates += 1
            else:
                raise EventStoreUnavailableError(f"alert {outcome.doc_id} not written: {outcome.reason}")
        return WriteResult(stored=stored, duplicates=duplicates)

    # --- reading ----------------------------------------------------------------------------------------

    def datasets(self) -> list[str]:
        try:
            response = self.client.indices.get_data_stream(name="logs-*-*")
        except NotFoundError:
            return []
        found = set()
        for stream in response["data_streams"]:
            parts = es_layout.split_stream(stream["name"])
            if parts and parts[0] != es_layout.ALERTS_DATASET and str(stream.get("template", "")).startswith(
                    es_layout.PREFIX):
                found.add(parts[0])
        return sorted(found)

    def index_expression(self, dataset: str, tenants: Collection[str] | None) -> str:
        """The data streams a read touches: the tenants' own, or every tenant's of the dataset (also when the
        tenants' names would not fit a request line; the query's `organization.id` filter still scopes it)."""
        if tenants is None:
            return es_layout.dataset_pattern(dataset)
        names = ",".join(es_layout.stream_name(dataset, tenant) for tenant in sorted(tenants))
        return names if len(names) <= MAX_INDEX_EXPRESSION else es_layout.dataset_pattern(dataset)

    def _filters(self, since: datetime | None, until: datetime | None,
                 tenants: Collection[str] | None) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = list(es_source.OWN_DOCUMENTS)
        if (clause := time_range(since, until)) is not None:
            filters.append(clause)
        if tenants is not None:
            filters.append({"terms": {"organization.id": sorted(tenants)}})
        return filters

    def read_options(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
                     tenants: Collection[str] | None = None) -> dict[str, str]:
        """The options of the `citysoc-es` source for one read (connection, streams, pushed-down range/tenants)."""
        options = self.connection.options() | {
            "index": self.index_expression(dataset, tenants), "slices": str(self.read_slices),
            "page_size": str(self.page_size)}
        if since is not None:
            options["since"] = since.astimezone(UTC).isoformat()
        if until is not None:
            options["until"] = until.astimezone(UTC).isoformat()
        if tenants is not None:
            options["tenants"] = ",".join(sorted(tenants))
        return options

    def read(self, spark: SparkSession, dataset: str, *, since: datetime | None = None,
             until: datetime | None = None, tenants: Collection[str] | None = None) -> DataFrame | None:
        if tenants is not None and not tenants:
            return None
        if self.count(dataset, since=since, until=until, tenants=tenants) == 0:
            return None
        register_source(spark)
        return spark.read.format(SOURCE_NAME).options(**self.read_options(
            dataset, since=since, until=until, tenants=tenants)).load()

    def count(self, dataset: str, *, since: datetime | None = None, until: datetime | None = None,
              tenants: Collection[str] | None = None) -> int:
        if tenants is not None and not tenants:
            return 0
        try:
            response = self.client.count(index=self.index_expression(dataset, tenants), ignore_unavailable=True,
                                         allow_no_indices=True,
                                         query={"bool": {"filter": self._filters(since, until, tenants)}})
        except NotFoundError:
            return 0
        return int(response["count"])

    def events_by_id(self, *, tenant: str, ids: Collection[str],
                     windows: Collection[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
        """From the tenant's own event streams, and only documents whose `organization.id` is the tenant."""
        validate_tenant_id(tenant)
        ranges = [clause for since, until in windows if until > since
                  if (clause := time_range(since, until)) is not None]
        if not ids or not ranges:
            return []
        found: dict[str, dict[str, Any]] = {}
        wanted = sorted(set(ids))
        index = f"logs-*-{tenant},-{es_layout.dataset_pattern(es_layout.ALERTS_DATASET)}"
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            try:
                response = self.client.search(
                    index=index, ignore_unavailable=True, allow_no_indices=True, size=2 * len(chunk),
                    track_total_hits=False, query={"bool": {
                        "filter": [{"terms": {"event.id": chunk}}, {"term": {"organization.id": tenant}}],
                        "should": ranges, "minimum_should_match": 1}})
            except NotFoundError:
                return []
            for hit in response["hits"]["hits"]:
                document = hit_document(hit, ARROW_SCHEMA)
                found.setdefault(document["event"]["id"], document)
        return list(found.values())

    # --- arrival order ----------------------------------------------------------------------------------

    def arrival_watermark(self) -> int:
        self.client.indices.refresh(index=EVENT_STREAMS, ignore_unavailable=True, allow_no_indices=True)
        response = self.client.search(index=EVENT_STREAMS, size=0, ignore_unavailable=True, allow_no_indices=True,
                                      aggs={"newest": {"max": {"field": "event.ingested"}}})
        newest = response["aggregations"]["newest"]["value"] if "aggregations" in response else None
        if newest is None:
            return 0
        return max(0, _micros(newest) - int(self.arrival_slack / timedelta(microseconds=1)))

    def arrivals(self, *, after: int, upto: int, datasets: Collection[str] | None = None) -> list[Arrival]:
        if upto <= after:
            return []
        index = EVENT_STREAMS if datasets is None else ",".join(es_layout.dataset_pattern(d) for d in sorted(datasets))
        if not index:
            return []
        query = {"bool": {"filter": [*es_source.OWN_DOCUMENTS, {"range": {"event.ingested": {
            "gt": after // 1000, "lte": upto // 1000, "format": "epoch_millis"}}}]}}
        found: list[Arrival] = []
        after_key: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": 1000, "sources": [
                {"dataset": {"terms": {"field": "event.dataset"}}},
                {"tenant": {"terms": {"field": "organization.id"}}}]}
            if after_key is not None:
                composite["after"] = after_key
            response = self.client.search(
                index=index, size=0, ignore_unavailable=True, allow_no_indices=True, query=query,
                aggs={"streams": {"composite": composite, "aggs": {
                    "first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}}}})
            streams = response.get("aggregations", {}).get("streams", {})
            for bucket in streams.get("buckets", []):
                found.append(Arrival(dataset=bucket["key"]["dataset"], tenant=bucket["key"]["tenant"],
                                     first_us=_micros(bucket["first"]["value"]),
                                     last_us=_micros(bucket["last"]["value"]),
                                     events=int(bucket["doc_count"])))
            after_key = streams.get("after_key")
            if after_key is None or not streams.get("buckets"):
                break
        return sorted(found, key=lambda arrival: (arrival.dataset, arrival.tenant))

    def set_consumer_cursor(self, name: str, mark: int) -> None:
        """Nothing to keep: Elasticsearch never rewrites stored documents (no compaction to hold back), and
        `event.ingested` does not change, so what is after a consumer's mark stays reportable as new."""


def register_source(spark: SparkSession) -> None:
    """Make `format("citysoc-es")` known to the session, with filter pushdown to Python data sources on."""
    spark.dataSource.register(ElasticsearchSource)
    spark.conf.set("spark.sql.python.filterPushdown.enabled", "true")


def _body(document: Mapping[str, Any]) -> dict[str, Any]:
    """`_meta` of a pipeline body is the client's `meta` keyword."""
    body = dict(document)
    if "_meta" in body:
        body["meta"] = body.pop("_meta")
    return body


def _letter(document: Mapping[str, Any], *, tenant: str, dataset: str, origin: str, reason: str) -> DeadLetter:
    raw = (document.get("event") or {}).get("original") or json.dumps(document, sort_keys=True, default=str)
    return DeadLetter(tenant=tenant, source=f"elasticsearch:{dataset}", origin=origin, reason=reason, raw=raw)


# --- alerts as ECS ---------------------------------------------------------------------------------------

_ATTACK_TECHNIQUE = "attack.t"


def alert_document(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert (`correlator.engine.alerts`) as an ECS document: `event.kind: alert`, `rule.*`, `event.ids`,
    `organization.id`, `threat.technique.id` from its ATT&CK tags, its entities as their ECS fields."""
    rule = alert.get("rule") or {}
    event = alert.get("event") or {}
    tags = [str(tag) for tag in rule.get("tags") or []]
    techniques = sorted({tag.removeprefix("attack.").upper() for tag in tags if tag.startswith(_ATTACK_TECHNIQUE)})
    document: dict[str, Any] = {
        "@timestamp": alert["@timestamp"],
        "organization": {"id": alert["organization"]["id"]},
        "message": alert.get("message"),
        "tags": tags,
        "event": {"kind": "alert", "id": alert["id"], "ids": list(event.get("ids") or []),
                  "dataset": es_layout.ALERTS_DATASET, "severity": _SEVERITY.get(str(rule.get("level")), 0)},
        "rule": {"id": rule.get("id"), "name": rule.get("title"), "ruleset": "sigma", "category": rule.get("kind")},
        "log": {"level": rule.get("level")},
        "citysoc": {"alert": {"group_key": alert.get("group_key"), "count": event.get("count"),
                              "source_dataset": event.get("dataset")}},
    }
    window = alert.get("window") or {}
    if window.get("start"):
        document["event"]["start"] = window["start"]
    if event.get("end") or window.get("end"):
        document["event"]["end"] = event.get("end") or window.get("end")
    if techniques:
        document["threat"] = {"framework": "MITRE ATT&CK", "technique": {"id": techniques}}
    for name, values in (alert.get("entities") or {}).items():
        node = document
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = list(values)
    return document


_SEVERITY = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}

