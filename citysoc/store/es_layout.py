"""How CitySOC lays its data out in Elasticsearch: names, templates, lifecycle policies and tenant roles.

Pure functions returning the bodies of the documented APIs (`cluster.put_component_template`,
`indices.put_index_template`, `ilm.put_lifecycle`, `ingest.put_pipeline`, `security.put_role`), so the layout
is reviewable and unit-tested without a cluster; `citysoc.store.elastic` sends them.

- Events: data streams `logs-<dataset>-<tenant>` (Elastic's data stream naming scheme: type, dataset,
  namespace = tenant). One index template per dataset (`logs-<dataset>-*`) composed of the ECS mappings of
  the event schema and the settings component, and per member one per dataset (`logs-<dataset>-<tenant>`, a
  higher priority) naming the member's ILM policy (its contract's retention). Priorities are above the
  built-in `logs` template (100) and Elastic's integrations (200): a cluster that also receives Elastic Agent
  data for the same datasets gets CitySOC's mappings for those streams; keep such data in another cluster, or
  name no member like an Agent namespace (`default`).
- Alerts: data streams `logs-citysoc.alerts-<tenant>`, their own mappings (`rule.*`, `event.ids`, entities).
- `event.ingested` is set by the final pipeline to the moment Elasticsearch received the document (as
  Elastic's integrations do): the arrival order continuous detection reads (`EventStore.arrivals`).
- A tenant's role reads its data streams only, and within them only documents whose `organization.id` is
  the tenant (document-level security): a member can be given Kibana access to its own data and nothing else.
"""

from __future__ import annotations

import re
from typing import Any

from citysoc.retention import DEFAULT_RETENTION, Retention
from citysoc.schedule import format_duration
from citysoc.schema import FIELDS
from citysoc.tenancy import validate_tenant_id

PREFIX = "citysoc"
MAPPINGS_COMPONENT = f"{PREFIX}-events@mappings"
SETTINGS_COMPONENT = f"{PREFIX}-events@settings"
ALERTS_TEMPLATE = f"{PREFIX}-alerts"
INGESTED_PIPELINE = f"{PREFIX}-events@ingested"
DEFAULT_POLICY = f"{PREFIX}-events"
ALERTS_DATASET = "citysoc.alerts"
#: Above the built-in `logs` template (priority 100) that matches `logs-*-*`, and not equal to the 200 of Elastic's
#: integration templates (`logs-system.auth-*`): Elasticsearch refuses two overlapping templates of one priority.
DATASET_PRIORITY = 210
TENANT_PRIORITY = 260
#: Rollover of a backing index: at Elastic's recommended shard size, else monthly. A stream per tenant and dataset
#: rolling over daily would keep tenants x datasets x retention-days shards (200 x 7 x 365 = 511,000): monthly,
#: a small member's stream holds one shard a month (docs/scaling.md). ILM ages count from rollover.
ROLLOVER = {"max_primary_shard_size": "50gb", "max_age": "30d"}
#: The meta every object carries, so an operator sees what made it.
META = {"managed_by": "citysoc", "managed": True}

_DATASET = re.compile(r"^[a-z0-9_.]{1,100}$")
# a backing index: .ds-<data stream>-<yyyy.MM.dd>-<generation>
_BACKING = re.compile(r"^\.ds-(?P<stream>.+)-\d{4}\.\d{2}\.\d{2}-\d{6}$")

# schema storage type -> Elasticsearch mapping (as Elastic's ECS templates map them)
_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "keyword", "ignore_above": 1024},
    "list<string>": {"type": "keyword", "ignore_above": 1024},
    "long": {"type": "long"},
    "bool": {"type": "boolean"},
    "timestamp": {"type": "date"},
    # a JSON document kept as text: in _source for Spark, not indexed (it is read, not searched, by rules)
    "json": {"type": "keyword", "index": False, "doc_values": False},
}
# fields whose ECS type is not the schema's storage type
_ECS_OVERRIDES: dict[str, dict[str, Any]] = {
    "message": {"type": "match_only_text"},
    "event.original": {"type": "keyword", "index": False, "doc_values": False},
    "source.ip": {"type": "ip", "ignore_malformed": True},
    "destination.ip": {"type": "ip", "ignore_malformed": True},
    "related.ip": {"type": "ip", "ignore_malformed": True},
    "process.command_line": {"type": "wildcard"},
    "url.original": {"type": "wildcard"},
}


class LayoutError(ValueError):
    """A dataset or data stream name that cannot be laid out in Elasticsearch."""


def validate_dataset(dataset: str) -> str:
    """Elastic's naming scheme: a dataset is lower-case letters, digits, `_` and `.`, never `-` (the separator)."""
    if not _DATASET.fullmatch(dataset):
        raise LayoutError(f"dataset {dataset!r} cannot name a data stream: use lower-case letters, digits, '_' and "
                          "'.' (no '-', which separates the parts of logs-<dataset>-<tenant>)")
    return dataset


def stream_name(dataset: str, tenant: str) -> str:
    """The data stream of one tenant's events of one dataset."""
    return f"logs-{validate_dataset(dataset)}-{validate_tenant_id(tenant)}"


def alerts_stream(tenant: str) -> str:
    return stream_name(ALERTS_DATASET, tenant)


def dataset_pattern(dataset: str) -> str:
    return f"logs-{validate_dataset(dataset)}-*"


def split_stream(name: str) -> tuple[str, str] | None:
    """(dataset, tenant) of a data stream or backing index name of the layout, None for any other name."""
    found = _BACKING.fullmatch(name)
    stream = found.group("stream") if found else name
    if not stream.startswith("logs-"):
        return None
    dataset, _, tenant = stream.removeprefix("logs-").partition("-")
    if not tenant or not _DATASET.fullmatch(dataset):
        return None
    return dataset, tenant


def dataset_template_name(dataset: str) -> str:
    return f"{PREFIX}-logs-{validate_dataset(dataset)}"


def tenant_template_name(dataset: str, tenant: str) -> str:
    return f"{PREFIX}-logs-{validate_dataset(dataset)}-{validate_tenant_id(tenant)}"


def policy_name(tenant: str | None) -> str:
    """The default policy, or the one of a tenant whose contract sets its own retention."""
    return DEFAULT_POLICY if tenant is None else f"{PREFIX}-events-{validate_tenant_id(tenant)}"


def role_name(tenant: str) -> str:
    return f"{PREFIX}-tenant-{validate_tenant_id(tenant)}"


# --- mappings ---------------------------------------------------------------------------------------------


def event_properties() -> dict[str, Any]:
    """The `properties` of the event schema (`citysoc.schema.FIELDS`), nested as ECS objects."""
    root: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        parts = ["@timestamp"] if name == "@timestamp" else name.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = dict(_ECS_OVERRIDES.get(name, _TYPES[kind]))
    return root


def mappings_component() -> dict[str, Any]:
    """Component template: the event schema's mappings. Fields outside it are kept in `_source` but not indexed
    (`dynamic: false`), so a document from another shipper never changes the mapping."""
    return {"template": {"mappings": {"dynamic": False, "properties": event_properties()}},
            "meta": {**META, "description": "ECS mappings of the CitySOC event schema"}}


def settings_component(policy: str = DEFAULT_POLICY) -> dict[str, Any]:
    return {"template": {"settings": {"index.lifecycle.name": policy, "index.final_pipeline": INGESTED_PIPELINE,
                                      "index.codec": "best_compression"}},
            "meta": {**META, "description": "Lifecycle, codec and final pipeline of CitySOC event data streams"}}


def ingested_pipeline() -> dict[str, Any]:
    """Final pipeline: `event.ingested` = when Elasticsearch received the document (the arrival order)."""
    return {"description": "CitySOC: event.ingested is the arrival time in the event store",
            "processors": [{"set": {"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}}],
            "_meta": META}


def dataset_template(dataset: str) -> dict[str, Any]:
    """Index template of one dataset's data streams, every tenant (the default retention)."""
    return {"index_patterns": [dataset_pattern(dataset)], "data_stream": {}, "priority": DATASET_PRIORITY,
            "composed_of": [MAPPINGS_COMPONENT, SETTINGS_COMPONENT],
            "meta": {**META, "dataset": dataset}}


def tenant_template(dataset: str, tenant: str) -> dict[str, Any]:
    """Index template of one tenant's data stream of a dataset: the dataset's, with the tenant's ILM policy."""
    return {"index_patterns": [stream_name(dataset, tenant)], "data_stream": {}, "priority": TENANT_PRIORITY,
            "composed_of": [MAPPINGS_COMPONENT, SETTINGS_COMPONENT],
            "template": {"settings": {"index.lifecycle.name": policy_name(tenant)}},
            "meta": {**META, "dataset": dataset, "tenant": tenant}}


def lifecycle_policy(retention: Retention = DEFAULT_RETENTION) -> dict[str, Any]:
    """ILM phases: hot (rollover), warm after `warm_after` (read-only, merged, lower priority), delete after
    `delete_after`; ages count from rollover."""
    return {"phases": {
        "hot": {"min_age": "0ms", "actions": {"rollover": dict(ROLLOVER), "set_priority": {"priority": 100}}},
        "warm": {"min_age": format_duration(retention.warm_after),
                 "actions": {"readonly": {}, "forcemerge": {"max_num_segments": 1}, "set_priority": {"priority": 50}}},
        "delete": {"min_age": format_duration(retention.delete_after), "actions": {"delete": {}}},
    }, "_meta": dict(META)}


# --- alerts -----------------------------------------------------------------------------------------------

_ALERT_KEYWORDS = ("id", "kind", "dataset")


def alerts_template() -> dict[str, Any]:
    """Index template of the alerts data streams: ECS `rule.*`, `event.*`, `threat.*`, entities."""
    keyword = {"type": "keyword", "ignore_above": 1024}
    properties = {
        "@timestamp": {"type": "date"},
        "organization": {"properties": {"id": keyword}},
        "message": {"type": "match_only_text"},
        "tags": keyword,
        "event": {"properties": {**{name: keyword for name in _ALERT_KEYWORDS}, "ids": keyword,
                                 "severity": {"type": "long"}, "start": {"type": "date"}, "end": {"type": "date"},
                                 "created": {"type": "date"}}},
        "rule": {"properties": {"id": keyword, "uuid": keyword, "name": keyword, "ruleset": keyword,
                                "category": keyword,
                                "description": {"type": "match_only_text"}}},
        "threat": {"properties": {"technique": {"properties": {"id": keyword}}}},
        "log": {"properties": {"level": keyword}},
        "user": {"properties": {"name": keyword}},
        "host": {"properties": {"name": keyword}},
        "source": {"properties": {"ip": {"type": "ip", "ignore_malformed": True}}},
        "cloud": {"properties": {"account": {"properties": {"id": keyword}}}},
        "citysoc": {"properties": {"alert": {"properties": {"group_key": keyword, "count": {"type": "long"}}}}},
    }
    return {"index_patterns": [dataset_pattern(ALERTS_DATASET)], "data_stream": {}, "priority": TENANT_PRIORITY,
            "template": {"mappings": {"dynamic": False, "properties": properties},
                         "settings": {"index.lifecycle.name": DEFAULT_POLICY}},
            "meta": {**META, "dataset": ALERTS_DATASET}}


# --- tenant roles -----------------------------------------------------------------------------------------


def tenant_role(tenant: str) -> dict[str, Any]:
    """Read access to the tenant's data streams (events and alerts), limited by document-level security to
    documents whose `organization.id` is the tenant. The index pattern alone is not enough: `logs-*-<tenant>`
    also matches the streams of a tenant whose id ends in `-<tenant>`; the query closes that."""
    validate_tenant_id(tenant)
    return {
        "description": f"CitySOC member {tenant}: its own events and alerts, read-only",
        "cluster": [],
        "indices": [{
            "names": [f"logs-*-{tenant}"],
            "privileges": ["read", "view_index_metadata"],
            "query": {"term": {"organization.id": tenant}},
        }],
        "metadata": {**META, "tenant": tenant},
    }
