"""Spark reads Elasticsearch through a Python data source (`pyspark.sql.datasource`), `format("citysoc-es")`.

Planning (`partitions`) opens one point in time (PIT) over the index expression and plans one partition per
slice of it; each partition pages its slice with `search_after` on `_shard_doc` (the PIT tiebreaker), so the
slices read one consistent view in parallel, each document once. The PIT is not closed by the reader (no hook
runs after the last partition): it expires `keep_alive` after the last page asked for it.

What is pushed to Elasticsearch:
- the time range and tenants the store asks for (options `since`, `until`, `tenants`): a `range` on
  `@timestamp` and a `terms` on `organization.id`, plus the index expression of those tenants' streams only;
- filters Spark pushes (`pushFilters`, with `spark.sql.python.filterPushdown.enabled`): comparisons of
  `@timestamp` with a timezone-aware time, and `=`/`IN` on `organization.id`, `tenant`, `event.dataset` and
  `event.id`. Anything else is left to Spark;
- the columns: `_source` is filtered to the fields of the schema the reader is given, so a reader made with
  a narrower schema (`spark.read.schema(...)`) fetches only those.

Connection options: `url` and `secret_api_key`, or `username` and `password`; `ca_certs`. The key's option name
holds `secret` so that Spark redacts it wherever it redacts options (`spark.redaction.regex`), as it
does `password`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
from elasticsearch import Elasticsearch
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    InputPartition,
    LessThan,
    LessThanOrEqual,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StringType, StructField, StructType

from citysoc.schema import spark_schema
from citysoc.store.es_documents import hits_batch

SOURCE_NAME = "citysoc-es"
DEFAULT_PAGE_SIZE = 2000
DEFAULT_KEEP_ALIVE = "5m"

# column path -> the Elasticsearch field an equality on it filters
_TERM_FIELDS: dict[tuple[str, ...], str] = {
    ("organization", "id"): "organization.id",
    ("tenant",): "organization.id",
    ("event", "dataset"): "event.dataset",
    ("dataset",): "event.dataset",
    ("event", "id"): "event.id",
}
#: What makes a document one of CitySOC's events: another shipper's documents in a matching stream (an Elastic Agent
#: integration writing `logs-system.auth-default`) have no `organization.id` and are never read as a member's.
OWN_DOCUMENTS: tuple[dict[str, Any], ...] = ({"exists": {"field": "event.id"}},
                                             {"exists": {"field": "organization.id"}})
_RANGE_OPS: dict[type[Filter], str] = {GreaterThan: "gt", GreaterThanOrEqual: "gte", LessThan: "lt",
                                       LessThanOrEqual: "lte"}


def source_schema() -> StructType:
    """The frame this source reads: the event schema plus `tenant` and `dataset` (as `EventStore.read` gives)."""
    return StructType([*spark_schema().fields, StructField("tenant", StringType()),
                       StructField("dataset", StringType())])


def source_fields(schema: StructType) -> list[str]:
    """The dotted `_source` fields behind a schema's columns (`tenant`, `dataset` come from
    `organization.id`, `event.dataset`)."""
    names: list[str] = []

    def walk(struct: StructType, prefix: str) -> None:
        for item in struct.fields:
            if isinstance(item.dataType, StructType):
                walk(item.dataType, f"{prefix}{item.name}.")
            else:
                names.append(f"{prefix}{item.name}")

    walk(schema, "")
    mapped = {"tenant": "organization.id", "dataset": "event.dataset"}
    return sorted({mapped.get(name, name) for name in names})


def time_range(since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
    """`[since, until)` as a range query on `@timestamp` (None when open at both ends)."""
    bounds: dict[str, Any] = {}
    for key, moment in (("gte", since), ("lt", until)):
        if moment is not None:
            if moment.tzinfo is None:
                raise ValueError("since/until must be timezone-aware datetimes")
            bounds[key] = moment.isoformat()
    return {"range": {"@timestamp": bounds | {"format": "strict_date_optional_time"}}} if bounds else None


def filter_clause(item: Filter) -> dict[str, Any] | None:
    """The Elasticsearch query clause equivalent to one Spark filter, None when it cannot be pushed exactly."""
    attribute = getattr(item, "attribute", None)
    if isinstance(item, EqualTo | In) and attribute in _TERM_FIELDS:
        target = _TERM_FIELDS[item.attribute]
        values = [item.value] if isinstance(item, EqualTo) else list(item.value)
        if all(isinstance(value, str) for value in values):
            return {"terms": {target: values}}
        return None
    op = _RANGE_OPS.get(type(item))
    if op is not None and attribute == ("@timestamp",):
        value = getattr(item, "value", None)
        # a naive datetime is in the session's zone, which the reader does not know: leave it to Spark
        if isinstance(value, datetime) and value.tzinfo is not None:
            return {"range": {"@timestamp": {op: value.isoformat(), "format": "strict_date_optional_time"}}}
    return None


@dataclass
class ReadPlan:
    """What to read: the index expression, the query's filter clauses, the `_source` fields, how to split."""

    index: str
    filters: list[dict[str, Any]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    slices: int = 2
    page_size: int = DEFAULT_PAGE_SIZE
    keep_alive: str = DEFAULT_KEEP_ALIVE

    def query(self) -> dict[str, Any]:
        return {"bool": {"filter": [*OWN_DOCUMENTS, *self.filters]}}

    def page(self, *, pit_id: str, slice_id: int, after: Sequence[Any] | None) -> dict[str, Any]:
        """The keyword arguments of one `Elasticsearch.search` call for a page of a slice."""
        request: dict[str, Any] = {
            "pit": {"id": pit_id, "keep_alive": self.keep_alive},
            "query": self.query(),
            "sort": [{"_shard_doc": "asc"}],
            "size": self.page_size,
            "source": {"includes": self.fields} if self.fields else True,
            "track_total_hits": False,
        }
        if self.slices > 1:
            request["slice"] = {"id": slice_id, "max": self.slices}
        if after is not None:
            request["search_after"] = list(after)
        return request


def plan_from_options(options: Mapping[str, str], schema: StructType) -> ReadPlan:
    """The plan of a read from the source's options (as `ElasticsearchEventStore.read_options` sets them)."""
    if "index" not in options:
        raise ValueError("the citysoc-es source needs an `index` option (a data stream expression)")
    filters = []
    since = datetime.fromisoformat(options["since"]) if options.get("since") else None
    until = datetime.fromisoformat(options["until"]) if options.get("until") else None
    if (clause := time_range(since, until)) is not None:
        filters.append(clause)
    if options.get("tenants"):
        filters.append({"terms": {"organization.id": options["tenants"].split(",")}})
    return ReadPlan(index=options["index"], filters=filters, fields=source_fields(schema),
                    slices=max(1, int(options.get("slices", "2"))),
                    page_size=int(options.get("page_size", str(DEFAULT_PAGE_SIZE))),
                    keep_alive=options.get("keep_alive", DEFAULT_KEEP_ALIVE))


def connect(options: Mapping[str, str]) -> Elasticsearch:
    """An `Elasticsearch` client from the connection options (each executor builds its own)."""
    kwargs: dict[str, Any] = {}
    if options.get("secret_api_key"):
        kwargs["api_key"] = options["secret_api_key"]
    elif options.get("username"):
        kwargs["basic_auth"] = (options["username"], options.get("password", ""))
    if options.get("ca_certs"):
        kwargs["ca_certs"] = options["ca_certs"]
    return Elasticsearch(options["url"], **kwargs)


def read_slice(client: Any, plan: ReadPlan, *, pit_id: str, slice_id: int,
               schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Every page of one slice of the PIT, as Arrow batches of `schema`."""
    after: Sequence[Any] | None = None
    while True:
        response = client.search(**plan.page(pit_id=pit_id, slice_id=slice_id, after=after))
        hits = response["hits"]["hits"]
        if not hits:
            return
        yield hits_batch(hits, schema)
        if len(hits) < plan.page_size:
            return
        after = hits[-1]["sort"]
        pit_id = response.get("pit_id", pit_id)  # the PIT id may change between pages: use the newest


class SliceReader(DataSourceReader):
    """Reads a `ReadPlan`: one partition per slice of one point in time."""

    def __init__(self, options: Mapping[str, str], schema: StructType) -> None:
        self.options = dict(options)
        self.schema = schema
        self.plan = plan_from_options(self.options, schema)

    def pushFilters(self, filters: list[Filter]) -> Iterable[Filter]:
        for item in filters:
            clause = filter_clause(item)
            if clause is None:
                yield item
            else:
                self.plan.filters.append(clause)

    def partitions(self) -> Sequence[InputPartition]:
        client = connect(self.options)
        try:
            pit = client.open_point_in_time(index=self.plan.index, keep_alive=self.plan.keep_alive,
                                            ignore_unavailable=True)
        finally:
            client.close()
        return [InputPartition((pit["id"], slice_id)) for slice_id in range(self.plan.slices)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        pit_id, slice_id = partition.value
        arrow = to_arrow_schema(self.schema, timezone="UTC")  # as the worker converts batches
        client = connect(self.options)
        try:
            yield from read_slice(client, self.plan, pit_id=pit_id, slice_id=slice_id, schema=arrow)
        finally:
            client.close()


class ElasticsearchSource(DataSource):
    """`spark.read.format("citysoc-es").options(url=..., index=..., since=..., until=..., tenants=...).load()`."""

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> StructType:
        return source_schema()

    def reader(self, schema: StructType) -> DataSourceReader:
        return SliceReader(self.options, schema)
