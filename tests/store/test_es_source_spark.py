"""Spark takes the Arrow batches the Elasticsearch reader makes of search hits: the full event schema (structs,
lists, timestamps) crosses the Python data source boundary intact. The hits are pages of our own documents, as a
search returns them; only the paging by point in time needs a cluster (the contract suite)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from citysoc.store.es_documents import event_document, hits_batch
from citysoc.store.es_source import source_schema

T0 = datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)


class HitPagesReader(DataSourceReader):
    """One partition per page of hits given in the `pages` option (JSON), read as the slice reader reads a page."""

    def __init__(self, pages: str, schema: StructType) -> None:
        self.pages = pages
        self.schema = schema

    def partitions(self) -> Sequence[InputPartition]:
        return [InputPartition(number) for number in range(len(orjson.loads(self.pages)))]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        yield hits_batch(orjson.loads(self.pages)[partition.value], to_arrow_schema(self.schema, timezone="UTC"))


class HitPagesSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return "citysoc-test-hit-pages"

    def schema(self) -> StructType:
        return source_schema()

    def reader(self, schema: StructType) -> DataSourceReader:
        return HitPagesReader(self.options["pages"], schema)


def test_spark_reads_pages_of_hits_as_the_event_schema(spark: SparkSession) -> None:
    documents = [event_document({"@timestamp": T0 + timedelta(seconds=number), "event": {"id": f"e{number}",
                                 "category": ["authentication"]}, "process": {"pid": number},
                                 "aws": {"cloudtrail": {"read_only": number % 2 == 0}}},
                                tenant="council", dataset="system.auth") for number in range(4)]
    pages = [[{"_index": ".ds-logs-system.auth-council-2026.12.01-000001", "_id": doc["event"]["id"],
               "_source": doc, "sort": [n]} for n, doc in enumerate(documents[start:start + 2])] for start in (0, 2)]
    spark.dataSource.register(HitPagesSource)
    frame = spark.read.format("citysoc-test-hit-pages").option("pages", orjson.dumps(pages).decode()).load()
    rows = sorted(frame.select("`@timestamp`", "event.id", "event.category", "process.pid", "aws.cloudtrail.read_only",
                               "tenant", "dataset").collect(), key=lambda row: row["id"])
    assert [(row["@timestamp"].astimezone(UTC), row["id"], row["category"], row["pid"], row["read_only"],
             row["tenant"], row["dataset"]) for row in rows] == [
        (T0 + timedelta(seconds=n), f"e{n}", ["authentication"], n, n % 2 == 0, "council", "system.auth")
        for n in range(4)]
    assert frame.schema == source_schema()
