"""Our conversions around Elasticsearch, over the response shapes its documentation gives: events to `_source`,
bulk items to outcomes, search hits to Spark rows, Spark filters to queries, alerts to ECS. No cluster is needed:
these are our functions; what the cluster does with them is the contract suite's (`test_store_contract.py`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql.datasource import EqualTo, GreaterThanOrEqual, In, LessThan, StringContains
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from citysoc.schema import ARROW_SCHEMA, to_row
from citysoc.store.elastic import alert_document
from citysoc.store.es_documents import (
    bulk_outcome,
    event_document,
    events_table,
    hit_document,
    hit_row,
    hits_batch,
    table_documents,
)
from citysoc.store.es_source import ReadPlan, filter_clause, plan_from_options, source_fields, source_schema

T0 = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)
EVENT = {"@timestamp": T0, "message": "Failed password for root", "event": {"id": "e1", "action": "ssh_login"},
         "source": {"ip": "192.0.2.7", "port": 22}, "related": {"ip": ["192.0.2.7"]},
         "aws": {"cloudtrail": {"request_parameters": '{"bucketName":"x"}', "read_only": True}}}
FULL = pa.schema([*ARROW_SCHEMA, pa.field("tenant", pa.string()), pa.field("dataset", pa.string())])


def test_event_document_is_the_ecs_source_with_where_it_was_filed() -> None:
    document = event_document(EVENT, tenant="council", dataset="system.auth")
    assert document["@timestamp"] == "2026-12-01T09:30:15.123456Z"
    assert document["organization"] == {"id": "council"} and document["event"]["dataset"] == "system.auth"
    assert "host" not in document  # absent fields left out
    own = event_document(EVENT | {"organization": {"id": "elsewhere"}}, tenant="council", dataset="system.auth")
    assert own["organization"]["id"] == "elsewhere"  # the event's own value wins, as in the lake
    with pytest.raises(KeyError, match="not in the event schema"):
        event_document(EVENT | {"surprise": 1}, tenant="council", dataset="system.auth")
    with pytest.raises(ValueError, match=r"event\.id"):
        event_document({"@timestamp": T0}, tenant="council", dataset="system.auth")


def test_a_table_becomes_documents_column_by_column_as_one_event_would() -> None:
    other = {"@timestamp": T0 + timedelta(seconds=1), "event": {"id": "e2", "dataset": "system.syslog"},
             "host": {"name": "gw-1"}, "process": {"args": []}}
    documents = table_documents(events_table([EVENT, other]), tenant="council", dataset="system.auth")
    assert documents == [event_document(EVENT, tenant="council", dataset="system.auth"),
                         event_document(other, tenant="council", dataset="system.auth")]
    assert documents[1] == {"@timestamp": "2026-12-01T09:30:16.123456Z", "host": {"name": "gw-1"},
                            "process": {"args": []}, "organization": {"id": "council"},
                            "event": {"id": "e2", "dataset": "system.syslog"}}  # only what the row sets
    assert "host" not in documents[0] and documents[0]["source"] == {"ip": "192.0.2.7", "port": 22}
    with pytest.raises(ValueError, match="@timestamp"):
        table_documents(events_table([{"event": {"id": "e3"}}]), tenant="council", dataset="system.auth")


def bulk_item(status: int, error: dict[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"_index": ".ds-logs-system.auth-council-2026.12.06-000001", "_id": "e1", "status": status}
    if error is not None:
        info["error"] = error
    return {"create": info}


def test_bulk_outcomes_tell_stored_replayed_refused_and_unavailable() -> None:
    assert bulk_outcome(True, bulk_item(201)).outcome == "stored"
    conflict = {"type": "version_conflict_engine_exception",
                "reason": "[e1]: version conflict, document already exists"}
    assert bulk_outcome(False, bulk_item(409, conflict)).outcome == "duplicate"
    refused = bulk_outcome(False, bulk_item(400, {
        "type": "document_parsing_exception", "reason": "[1:52] failed to parse field [source.port] of type [long]",
        "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"ssh\""}}))
    assert refused.outcome == "rejected" and refused.doc_id == "e1"
    assert "HTTP 400" in refused.reason and "source.port" in refused.reason and "For input string" in refused.reason
    for status in (429, 503):
        assert bulk_outcome(False, bulk_item(status, {"type": "es_rejected_execution_exception",
                                                       "reason": "rejected"})).outcome == "unavailable"


def hit(source: dict[str, Any], index: str = ".ds-logs-system.auth-north-gate-2026.12.06-000001") -> dict[str, Any]:
    return {"_index": index, "_id": "e1", "_source": source, "sort": [17]}


def test_a_hit_of_our_own_document_reads_back_as_the_row_written() -> None:
    document = event_document(EVENT, tenant="north-gate", dataset="system.auth")
    row = hit_row(hit(document), FULL)
    expected = to_row(EVENT)
    expected["organization"]["id"], expected["event"]["dataset"] = "north-gate", "system.auth"
    assert row == {**expected, "tenant": "north-gate", "dataset": "system.auth"}
    assert hit_document(hit(document), ARROW_SCHEMA) == document  # events_by_id gives what was stored


def test_a_page_of_hits_with_different_fields_fills_each_column() -> None:
    first = event_document(EVENT, tenant="council", dataset="system.auth")
    second = {"@timestamp": "2026-12-01T10:00:00Z", "event": {"id": "e9"}, "host": {"name": "gw-1"}}
    batch = hits_batch([hit(first), hit(second, index=".ds-logs-system.syslog-elm-2026.12.01-000001")], FULL)
    rows = batch.to_pylist()
    assert rows[0] == hit_row(hit(first), FULL) and rows[0]["host"]["name"] is None
    assert rows[1]["host"]["name"] == "gw-1" and rows[1]["source"]["port"] is None
    assert (rows[1]["tenant"], rows[1]["dataset"]) == ("elm", "system.syslog")
    assert hits_batch([], FULL).num_rows == 0


def test_hits_from_other_shippers_are_shaped_to_the_schema() -> None:
    source = {"@timestamp": 1764581415123, "event.id": "e2", "event": {"severity": "5", "category": "authentication"},
              "process": {"pid": ["42", "43"]}, "aws.cloudtrail.request_parameters": {"b": 1, "a": [2]},
              "aws": {"cloudtrail": {"read_only": "false"}}, "vendor": {"unknown": 1}}
    row = hit_row(hit(source), FULL)
    assert row["@timestamp"] == datetime(2025, 12, 1, 9, 30, 15, 123000, tzinfo=UTC)  # epoch millis
    assert row["event"]["id"] == "e2"  # dotted keys are the same field
    assert row["event"]["severity"] == 5 and row["event"]["category"] == ["authentication"]
    assert row["process"]["pid"] == 42  # a scalar field takes the first of an array
    assert row["aws"]["cloudtrail"]["request_parameters"] == '{"a":[2],"b":1}'  # JSON fields stay text
    assert row["aws"]["cloudtrail"]["read_only"] is False
    # no organization.id / event.dataset: where it was filed, from the backing index
    assert (row["tenant"], row["dataset"]) == ("north-gate", "system.auth")


def test_a_pruned_schema_gets_only_its_columns_and_a_batch_spark_takes() -> None:
    pruned = StructType([StructField("@timestamp", TimestampType()), StructField("tenant", StringType()),
                         StructField("event", StructType([StructField("id", StringType())]))])
    arrow = to_arrow_schema(pruned, timezone="UTC")
    batch = hits_batch([hit(event_document(EVENT, tenant="council", dataset="system.auth"))], arrow)
    assert batch.schema == arrow
    assert batch.to_pylist() == [{"@timestamp": T0, "tenant": "council", "event": {"id": "e1"}}]
    assert source_fields(pruned) == ["@timestamp", "event.id", "organization.id"]
    assert "event.original" in source_fields(source_schema())


def test_spark_filters_become_queries_where_exact_and_stay_with_spark_otherwise() -> None:
    assert filter_clause(EqualTo(("tenant",), "council")) == {"terms": {"organization.id": ["council"]}}
    assert filter_clause(In(("event", "id"), ("a", "b"))) == {"terms": {"event.id": ["a", "b"]}}
    since = datetime(2026, 12, 1, tzinfo=UTC)
    assert filter_clause(GreaterThanOrEqual(("@timestamp",), since)) == {
        "range": {"@timestamp": {"gte": since.isoformat(), "format": "strict_date_optional_time"}}}
    assert filter_clause(LessThan(("@timestamp",), datetime(2026, 12, 1))) is None  # zone unknown: Spark's
    assert filter_clause(StringContains(("message",), "root")) is None
    assert filter_clause(EqualTo(("user", "name"), "root")) is None  # keyword vs Spark equality: not pushed


def test_read_plan_pages_one_slice_of_a_point_in_time() -> None:
    plan = plan_from_options({"index": "logs-system.auth-council", "since": "2026-12-01T00:00:00+00:00",
                              "until": "2026-12-02T00:00:00+00:00", "tenants": "council", "slices": "4",
                              "page_size": "500"}, source_schema())
    first = plan.page(pit_id="pit-1", slice_id=3, after=None)
    assert first["pit"] == {"id": "pit-1", "keep_alive": "5m"} and first["slice"] == {"id": 3, "max": 4}
    assert first["sort"] == [{"_shard_doc": "asc"}] and first["size"] == 500 and "search_after" not in first
    filters = first["query"]["bool"]["filter"]
    assert {"terms": {"organization.id": ["council"]}} in filters
    assert {"exists": {"field": "organization.id"}} in filters  # another shipper's documents are not a member's
    assert {"range": {"@timestamp": {"gte": "2026-12-01T00:00:00+00:00", "lt": "2026-12-02T00:00:00+00:00",
                                     "format": "strict_date_optional_time"}}} in filters
    assert plan.page(pit_id="pit-2", slice_id=0, after=[17])["search_after"] == [17]
    single = ReadPlan(index="logs-x-*", slices=1)
    assert "slice" not in single.page(pit_id="p", slice_id=0, after=None)


def test_alerts_are_ecs_documents_with_rule_event_ids_and_tenant() -> None:
    alert = {"id": "a1", "@timestamp": "2026-12-01T09:30:15.123Z", "organization": {"id": "council"},
             "rule": {"id": "r1", "title": "SSH brute force", "level": "high", "kind": "correlation",
                      "tags": ["attack.credential-access", "attack.t1110.001"]},
             "event": {"ids": ["e1", "e2"], "count": 2, "dataset": "system.auth"},
             "entities": {"source.ip": ["192.0.2.7"], "user.name": ["root"]}, "group_key": "source.ip=192.0.2.7",
             "window": {"start": "2026-12-01T09:30:15.123Z", "end": "2026-12-01T09:35:15.123Z"}, "message": "m"}
    document = alert_document(alert)
    assert document["organization"] == {"id": "council"}
    assert document["event"]["kind"] == "alert" and document["event"]["ids"] == ["e1", "e2"]
    assert document["rule"] == {"id": "r1", "name": "SSH brute force", "ruleset": "sigma", "category": "correlation"}
    assert document["threat"]["technique"]["id"] == ["T1110.001"]
    assert document["source"] == {"ip": ["192.0.2.7"]} and document["user"] == {"name": ["root"]}
    assert document["event"]["severity"] == 73 and document["event"]["end"] == "2026-12-01T09:35:15.123Z"


def test_read_options_scope_the_streams_and_carry_the_connection() -> None:
    from citysoc.store.elastic import ElasticsearchEventStore, EsConnection

    # a client is made but never used: nothing here sends a request
    store = ElasticsearchEventStore(EsConnection(url="https://es.example:9200", api_key="key", ca_certs="/ca.crt"),
                                    read_slices=6)
    options = store.read_options("system.auth", since=datetime(2026, 12, 1, 1, tzinfo=UTC),
                                 until=datetime(2026, 12, 2, tzinfo=UTC), tenants=["b-org", "a-org"])
    assert options["index"] == "logs-system.auth-a-org,logs-system.auth-b-org"
    assert options["tenants"] == "a-org,b-org" and options["slices"] == "6"
    assert options["since"] == "2026-12-01T01:00:00+00:00" and options["until"] == "2026-12-02T00:00:00+00:00"
    assert (options["url"], options["secret_api_key"], options["ca_certs"]) == (
        "https://es.example:9200", "key", "/ca.crt")  # `secret`: Spark redacts it in plans and its UI
    assert "password" not in options
    many = [f"member-organisation-{number:03d}" for number in range(200)]
    assert store.index_expression("system.auth", many) == "logs-system.auth-*"  # the request line stays short
    plan = plan_from_options(store.read_options("system.auth", tenants=many), source_schema())
    assert {"terms": {"organization.id": sorted(many)}} in plan.query()["bool"]["filter"]  # still scoped
