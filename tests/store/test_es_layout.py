"""The Elasticsearch layout: names, mappings of every schema field, templates, ILM phases and tenant roles, and the
retention a contract sets. Pure bodies of the documented APIs: checked here without a cluster; the contract
suite (`test_store_contract.py`) sends them to one when SOC_ES_URL is set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from case_api.sla.models import DEFAULT_CONTRACT, SlaContract
from citysoc.errors import InvalidTenantIdError
from citysoc.retention import DEFAULT_RETENTION, Retention, retention_of
from citysoc.schema import FIELDS
from citysoc.store import es_layout
from citysoc.store.es_layout import LayoutError


def mapping_at(properties: dict[str, Any], name: str) -> dict[str, Any]:
    parts = ["@timestamp"] if name == "@timestamp" else name.split(".")
    node: dict[str, Any] = {"properties": properties}
    for part in parts:
        node = node["properties"][part]
    return node


def test_every_schema_field_is_mapped_with_its_ecs_type() -> None:
    properties = es_layout.mappings_component()["template"]["mappings"]["properties"]
    for name in FIELDS:
        assert "type" in mapping_at(properties, name), name
    assert mapping_at(properties, "@timestamp")["type"] == "date"
    assert mapping_at(properties, "organization.id")["type"] == "keyword"
    assert mapping_at(properties, "source.ip")["type"] == "ip"
    assert mapping_at(properties, "event.severity")["type"] == "long"
    assert mapping_at(properties, "aws.cloudtrail.read_only")["type"] == "boolean"
    # JSON documents kept as text are read by Spark, not searched
    assert mapping_at(properties, "aws.cloudtrail.request_parameters")["index"] is False
    assert es_layout.mappings_component()["template"]["mappings"]["dynamic"] is False


def test_stream_names_follow_the_data_stream_naming_scheme() -> None:
    assert es_layout.stream_name("aws.cloudtrail", "northgate-hospital") == "logs-aws.cloudtrail-northgate-hospital"
    assert es_layout.alerts_stream("council") == "logs-citysoc.alerts-council"
    with pytest.raises(LayoutError, match="no '-'"):
        es_layout.stream_name("aws-cloudtrail", "council")
    with pytest.raises(InvalidTenantIdError):
        es_layout.stream_name("system.auth", "Council*")


@pytest.mark.parametrize(("name", "parts"), [
    ("logs-system.auth-northgate-hospital", ("system.auth", "northgate-hospital")),
    (".ds-logs-system.auth-northgate-hospital-2026.12.06-000003", ("system.auth", "northgate-hospital")),
    ("logs-citysoc.alerts-council", ("citysoc.alerts", "council")),
    ("metrics-system.cpu-council", None),
    ("logs-nodataset", None),
])
def test_split_stream_reads_streams_and_backing_indices(name: str, parts: tuple[str, str] | None) -> None:
    assert es_layout.split_stream(name) == parts


def test_templates_outrank_the_builtin_logs_template_and_make_data_streams() -> None:
    dataset = es_layout.dataset_template("system.auth")
    assert dataset["index_patterns"] == ["logs-system.auth-*"] and dataset["data_stream"] == {}
    assert dataset["priority"] > 100  # the built-in `logs` template matches logs-*-* at 100
    assert dataset["priority"] != 200  # Elastic's integration templates: equal priorities may not overlap
    assert dataset["composed_of"] == [es_layout.MAPPINGS_COMPONENT, es_layout.SETTINGS_COMPONENT]
    tenant = es_layout.tenant_template("system.auth", "council")
    assert tenant["index_patterns"] == ["logs-system.auth-council"] and tenant["priority"] > dataset["priority"]
    assert tenant["template"]["settings"]["index.lifecycle.name"] == "citysoc-events-council"
    settings = es_layout.settings_component()["template"]["settings"]
    assert settings["index.lifecycle.name"] == es_layout.DEFAULT_POLICY
    assert settings["index.final_pipeline"] == es_layout.INGESTED_PIPELINE
    alerts = es_layout.alerts_template()
    assert alerts["index_patterns"] == ["logs-citysoc.alerts-*"] and alerts["priority"] > dataset["priority"]
    assert {"rule", "event", "organization", "threat"} <= set(alerts["template"]["mappings"]["properties"])


def test_lifecycle_policy_takes_the_contract_retention() -> None:
    retention = Retention.model_validate({"warm_after": "2d", "delete_after": "400d"})
    phases = es_layout.lifecycle_policy(retention)["phases"]
    assert list(phases) == ["hot", "warm", "delete"]
    assert phases["hot"]["actions"]["rollover"]["max_primary_shard_size"] == "50gb"
    assert phases["warm"]["min_age"] == "2d" and phases["delete"]["min_age"] == "400d"
    assert "delete" in phases["delete"]["actions"]
    assert es_layout.lifecycle_policy()["phases"]["delete"]["min_age"] == "365d"


def test_tenant_role_reads_only_its_streams_and_its_own_documents() -> None:
    role = es_layout.tenant_role("northgate-hospital")
    (grant,) = role["indices"]
    assert grant["names"] == ["logs-*-northgate-hospital"]
    assert set(grant["privileges"]) == {"read", "view_index_metadata"}  # nothing that writes
    # `logs-*-northgate-hospital` also matches a tenant named `x-northgate-hospital`: DLS closes that
    assert grant["query"] == {"term": {"organization.id": "northgate-hospital"}}
    assert role["cluster"] == []
    assert es_layout.role_name("northgate-hospital") == "citysoc-tenant-northgate-hospital"


def test_retention_parses_orders_and_defaults() -> None:
    assert Retention.model_validate({"warm_after": "1d", "delete_after": 90}).delete_after == timedelta(days=90)
    with pytest.raises(ValidationError, match="warm_after comes before delete_after"):
        Retention.model_validate({"warm_after": "30d", "delete_after": "7d"})
    with pytest.raises(ValidationError, match="at most"):
        Retention.model_validate({"delete_after": "9000d"})
    assert retention_of(None) == DEFAULT_RETENTION
    assert retention_of({"targets": {}, "retention": {"delete_after": "30d"}}).delete_after == timedelta(days=30)


def test_a_contract_carries_its_retention_and_refuses_a_bad_one() -> None:
    document = DEFAULT_CONTRACT.model_dump(mode="json") | {"retention": {"warm_after": "3d", "delete_after": "180d"}}
    contract = SlaContract.model_validate(document)
    assert contract.retention == Retention(warm_after=timedelta(days=3), delete_after=timedelta(days=180))
    assert contract.model_dump(mode="json")["retention"] == {"warm_after": "3d", "delete_after": "180d"}
    with pytest.raises(ValidationError, match="retention"):
        SlaContract.model_validate(document | {"retention": {"keep": "forever"}})
