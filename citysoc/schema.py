"""The event schema: ECS documents stored with one fixed, nested schema for every dataset.

One field table drives the Arrow schema (what collectors write to Parquet), the Spark schema (what the
correlator reads, so files written before a field existed read it as null) and the set of field
names the Sigma field mappings may target. Free-form vendor objects (CloudTrail `requestParameters`,
`responseElements`, `additionalEventData`, syslog structured data) are kept as JSON strings, as
Elastic's integrations keep them in keyword fields; the rule compiler reads into them with
`get_json_object`. The same holds for the records whose fields are open-ended: Sysmon's `EventData`
(`winlog.event_data`, as Elastic's sysmon_linux integration names it), auditd's key=value pairs
(`auditd.log.fields`) and the extensions of CEF and LEEF payloads (`cef.extensions`, `leef.extensions`).

Fields added later (the `source.geo.*` and `source.as.*` of GeoIP enrichment) are absent from older
files: Spark reads them with this schema as null, and compaction merges old files with new ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # Spark is imported where a Spark schema is asked for: writers of the lake need none
    from pyspark.sql.types import StructType

# Dotted ECS name -> storage type. Order is the column order in the files.
FIELDS: dict[str, str] = {
    "@timestamp": "timestamp",
    "message": "string",
    "tags": "list<string>",
    "organization.id": "string",
    "event.id": "string",
    "event.dataset": "string",
    "event.module": "string",
    "event.kind": "string",
    "event.category": "list<string>",
    "event.type": "list<string>",
    "event.action": "string",
    "event.provider": "string",
    "event.outcome": "string",
    "event.code": "string",
    "event.severity": "long",
    "event.created": "timestamp",
    "event.ingested": "timestamp",
    "event.original": "string",
    "host.name": "string",
    "host.hostname": "string",
    "process.name": "string",
    "process.pid": "long",
    "process.entity_id": "string",
    "process.executable": "string",
    "process.command_line": "string",
    "process.args": "list<string>",
    "process.title": "string",
    "process.working_directory": "string",
    "process.hash.md5": "string",
    "process.hash.sha1": "string",
    "process.hash.sha256": "string",
    "process.parent.pid": "long",
    "process.parent.entity_id": "string",
    "process.parent.name": "string",
    "process.parent.executable": "string",
    "process.parent.command_line": "string",
    "file.path": "string",
    "file.name": "string",
    "file.directory": "string",
    "file.extension": "string",
    "file.hash.md5": "string",
    "file.hash.sha1": "string",
    "file.hash.sha256": "string",
    "source.ip": "string",
    "source.port": "long",
    "source.address": "string",
    "source.domain": "string",
    "source.user.name": "string",
    # GeoIP enrichment at ingest (collectors.geoip), as Elastic's geoip processor names it
    "source.geo.country_iso_code": "string",
    "source.geo.country_name": "string",
    "source.geo.continent_code": "string",
    "source.as.number": "long",
    "source.as.organization.name": "string",
    "destination.ip": "string",
    "destination.port": "long",
    "destination.address": "string",
    "destination.domain": "string",
    "destination.user.name": "string",
    "network.transport": "string",
    "network.direction": "string",
    "network.type": "string",
    "network.protocol": "string",
    "user.name": "string",
    "user.id": "string",
    # ECS: a user's e-mail address; Entra ID / Microsoft 365 user principal names (user@domain) land here
    "user.email": "string",
    "user.full_name": "string",
    "user.domain": "string",
    # the user an action was done to (a role granted, a factor reset), as Elastic's okta and azure pipelines set it
    "user.target.id": "string",
    "user.target.name": "string",
    "user.target.email": "string",
    "user_agent.original": "string",
    "url.original": "string",
    "url.domain": "string",
    "dns.question.name": "string",
    "observer.vendor": "string",
    "observer.product": "string",
    "observer.version": "string",
    "cloud.provider": "string",
    "cloud.region": "string",
    "cloud.account.id": "string",
    "cloud.project.id": "string",
    "related.ip": "list<string>",
    "related.user": "list<string>",
    "error.code": "string",
    "error.message": "string",
    "log.file.path": "string",
    "log.logger": "string",
    "log.syslog.priority": "long",
    "log.syslog.facility.code": "long",
    "log.syslog.facility.name": "string",
    "log.syslog.severity.code": "long",
    "log.syslog.severity.name": "string",
    "log.syslog.hostname": "string",
    "log.syslog.appname": "string",
    "log.syslog.procid": "string",
    "log.syslog.msgid": "string",
    "log.syslog.version": "long",
    "log.syslog.structured_data": "json",
    "system.auth.ssh.event": "string",
    "system.auth.ssh.method": "string",
    "system.auth.ssh.signature": "string",
    "winlog.event_id": "string",
    "winlog.record_id": "string",
    "winlog.channel": "string",
    "winlog.computer_name": "string",
    "winlog.provider_name": "string",
    "winlog.event_data": "json",
    "auditd.log.record_type": "string",
    "auditd.log.sequence": "long",
    "auditd.log.fields": "json",
    "cef.version": "string",
    "cef.name": "string",
    "cef.severity": "string",
    "cef.device.vendor": "string",
    "cef.device.product": "string",
    "cef.device.version": "string",
    "cef.device.event_class_id": "string",
    "cef.extensions": "json",
    "leef.version": "string",
    "leef.device.vendor": "string",
    "leef.device.product": "string",
    "leef.device.version": "string",
    "leef.device.event_id": "string",
    "leef.extensions": "json",
    # Cloud and identity audit logs (collectors.cloud), as Elastic's okta, o365, github, gcp and azure
    # integrations lay them out. Open-ended vendor records are JSON: `okta` (the LogEvent, keys snake_cased),
    # `o365.audit` (the audit record as Microsoft writes it), `github` (the audit event as GitHub writes it),
    # `azure.*.properties` and `gcp.audit.request`/`response`/`authorization_info`.
    "okta": "json",
    "o365.audit": "json",
    "github": "json",
    "gcp.audit.type": "string",
    "gcp.audit.method_name": "string",
    "gcp.audit.service_name": "string",
    "gcp.audit.resource_name": "string",
    "gcp.audit.authentication_info.principal_email": "string",
    "gcp.audit.status.code": "long",
    "gcp.audit.status.message": "string",
    "gcp.audit.request": "json",
    "gcp.audit.response": "json",
    "gcp.audit.authorization_info": "json",
    "azure.tenant_id": "string",
    "azure.correlation_id": "string",
    "azure.resource.id": "string",
    "azure.resource.provider": "string",
    "azure.activitylogs.operation_name": "string",
    "azure.activitylogs.category": "string",
    "azure.activitylogs.result_type": "string",
    "azure.activitylogs.result_signature": "string",
    "azure.activitylogs.identity": "json",
    "azure.activitylogs.properties": "json",
    "azure.signinlogs.operation_name": "string",
    "azure.signinlogs.category": "string",
    "azure.signinlogs.result_type": "string",
    "azure.signinlogs.result_signature": "string",
    "azure.signinlogs.result_description": "string",
    "azure.signinlogs.properties": "json",
    "azure.auditlogs.operation_name": "string",
    "azure.auditlogs.category": "string",
    "azure.auditlogs.result_signature": "string",
    "azure.auditlogs.properties": "json",
    "azure.identity_protection.operation_name": "string",
    "azure.identity_protection.category": "string",
    "azure.identity_protection.properties.risk_event_type": "string",
    "azure.identity_protection.properties.risk_level": "string",
    "azure.identity_protection.properties.risk_state": "string",
    "azure.identity_protection.properties.risk_detail": "string",
    "azure.identity_protection.properties.activity": "string",
    "azure.identity_protection.properties.source": "string",
    "azure.identity_protection.properties.detection_timing_type": "string",
    "azure.identity_protection.properties.additional_info": "json",
    "aws.cloudtrail.event_version": "string",
    "aws.cloudtrail.event_type": "string",
    "aws.cloudtrail.event_category": "string",
    "aws.cloudtrail.management_event": "bool",
    "aws.cloudtrail.read_only": "bool",
    "aws.cloudtrail.recipient_account_id": "string",
    "aws.cloudtrail.request_id": "string",
    "aws.cloudtrail.shared_event_id": "string",
    "aws.cloudtrail.vpc_endpoint_id": "string",
    "aws.cloudtrail.error_code": "string",
    "aws.cloudtrail.error_message": "string",
    "aws.cloudtrail.user_identity.type": "string",
    "aws.cloudtrail.user_identity.arn": "string",
    "aws.cloudtrail.user_identity.principal_id": "string",
    "aws.cloudtrail.user_identity.account_id": "string",
    "aws.cloudtrail.user_identity.access_key_id": "string",
    "aws.cloudtrail.user_identity.user_name": "string",
    "aws.cloudtrail.user_identity.invoked_by": "string",
    "aws.cloudtrail.user_identity.session_context.mfa_authenticated": "string",
    "aws.cloudtrail.user_identity.session_context.creation_date": "string",
    "aws.cloudtrail.user_identity.session_context.session_issuer.type": "string",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn": "string",
    "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id": "string",
    "aws.cloudtrail.user_identity.session_context.session_issuer.account_id": "string",
    "aws.cloudtrail.user_identity.session_context.session_issuer.user_name": "string",
    "aws.cloudtrail.tls_details.tls_version": "string",
    "aws.cloudtrail.tls_details.cipher_suite": "string",
    "aws.cloudtrail.tls_details.client_provided_host_header": "string",
    "aws.cloudtrail.request_parameters": "json",
    "aws.cloudtrail.response_elements": "json",
    "aws.cloudtrail.additional_eventdata": "json",
    "aws.cloudtrail.service_event_details": "json",
    "aws.cloudtrail.resources": "json",
}

# Fields holding a JSON document as a string (queried with get_json_object).
JSON_FIELDS: frozenset[str] = frozenset(name for name, kind in FIELDS.items() if kind == "json")

# Datasets the collectors produce, and the Sigma log sources they serve.
DATASETS: tuple[str, ...] = ("aws.cloudtrail", "system.auth", "system.syslog", "sysmon_linux.log", "auditd.log",
                             "cef.log", "leef.log", "azure.activitylogs", "azure.signinlogs", "azure.auditlogs",
                             "azure.identity_protection", "o365.audit", "gcp.audit", "okta.system", "github.audit")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "long": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}


def _tree() -> dict[str, Any]:
    """Nest the dotted names: {"event": {"id": "string", ...}, ...} keeping declaration order."""
    root: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        node = root
        *parents, leaf = name.split(".") if name != "@timestamp" else ["@timestamp"]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = kind
    return root


def _arrow_fields(tree: Mapping[str, Any]) -> list[pa.Field]:
    return [
        pa.field(key, pa.struct(_arrow_fields(value)) if isinstance(value, dict) else _ARROW_TYPES[value])
        for key, value in tree.items()
    ]


EVENT_TREE: dict[str, Any] = _tree()
ARROW_SCHEMA: pa.Schema = pa.schema(_arrow_fields(EVENT_TREE))


# Parquet encoding: free text, ids, process ids and event times, which (almost) never repeat, are stored
# plain. A dictionary of such values only costs the writer its attempt (pyarrow hashes every value and gives
# up at 1 MB a column chunk: on sshd lines the pids' and `log.syslog.procid`'s attempts cost more than their
# plain encoding) and the reader a copy of every value it touches (Spark's reader decodes dictionary strings
# per access): the system.auth rules of `bench/detect` run about 5% faster on a lake without them. Every
# other column keeps the dictionary (keywords such as event.action, process.name, user.name).
PLAIN_ENCODED: frozenset[str] = frozenset({
    "message", "event.id", "event.original", "@timestamp", "event.created", "process.pid", "process.parent.pid",
    "log.syslog.procid"})


def column_paths(fields: Any, prefix: str = "") -> Iterator[str]:
    """The Parquet column paths of a schema's (or struct type's) leaves, as the writer's per-column options name
    them (a list's values are `<path>.list.element`)."""
    for item in fields:
        path = f"{prefix}{item.name}"
        if pa.types.is_struct(item.type):
            yield from column_paths(item.type, path + ".")
        elif pa.types.is_list(item.type):
            yield f"{path}.list.element"
        else:
            yield path


DICTIONARY_COLUMNS: list[str] = [path for path in column_paths(ARROW_SCHEMA) if path not in PLAIN_ENCODED]
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS}


def spark_schema() -> StructType:
    """The same schema as a Spark StructType."""
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StructType

    schema = from_arrow_schema(ARROW_SCHEMA)
    assert isinstance(schema, StructType)
    return schema


def flatten(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted name, value) for every leaf of a nested document."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in JSON_FIELDS:
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Build a nested document from dotted names (the inverse of `flatten`)."""
    root: dict[str, Any] = {}
    for name, value in flat.items():
        if name == "@timestamp":
            root[name] = value
            continue
        node = root
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root


def to_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Shape an ECS document for the Arrow schema: only known fields, structs for every level.

    Unknown fields raise: a normaliser that emits a field the schema does not have is a bug that must
    not silently lose data.
    """
    flat = dict(flatten(doc))
    unknown = sorted(set(flat) - FIELDS.keys())
    if unknown:
        raise KeyError(f"fields not in the event schema: {', '.join(unknown)}")
    return _fill(EVENT_TREE, flat, "")


def _fill(tree: Mapping[str, Any], flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            row[key] = _fill(value, flat, f"{name}.")
        else:
            row[key] = flat.get(name)
    return row


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """`debugContext.debugData.requestUri` -> `debug_context.debug_data.request_uri`: how Elastic's
    integrations name vendor fields (okta.*, azure.*.properties), shared by the parsers and the Sigma mapping."""
    return ".".join(_CAMEL.sub("_", part).lower() for part in name.split("."))


def event_time(row: Mapping[str, Any]) -> datetime:
    value = row["@timestamp"]
    if not isinstance(value, datetime):
        raise TypeError("@timestamp must be a timezone-aware datetime")
    return value
