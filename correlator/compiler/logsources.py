"""Sigma log sources -> our datasets, and Sigma field names -> our ECS storage.

A `LogSourceRoute` says which datasets serve a Sigma log source, where unbound keywords are searched,
which extra condition narrows the datasets to the log source (sshd is `process.name = sshd` inside
`system.auth`), and how the source's native field names map to ECS. Its `pipeline()` is an ordinary
pySigma `ProcessingPipeline`, usable with any backend (e.g. sigma-cli).

ECS names pass through unchanged, so our own rules can use `source.ip` or `system.auth.ssh.event`.
Whether a mapped name exists in the event schema is decided by the backend, which knows the schema
(`correlator.sql.resolve_field`): an unknown field makes the rule unsupported, never a run-time
failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sigma.processing.conditions import IncludeFieldCondition, LogsourceCondition, RuleProcessingCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    ConvertTypeTransformation,
    FieldFunctionTransformation,
    FieldMappingTransformation,
    FieldPrefixMappingTransformation,
)
from sigma.rule import SigmaLogSource

from citysoc.schema import FIELDS, JSON_FIELDS, snake_case

# CloudTrail record field names (as SigmaHQ's aws rules write them) -> ECS, as Elastic's aws integration.
CLOUDTRAIL_FIELDS: dict[str, str] = {
    "eventSource": "event.provider",
    "eventName": "event.action",
    "eventID": "event.id",
    "eventTime": "@timestamp",
    "sourceIPAddress": "source.address",
    "userAgent": "user_agent.original",
    "errorCode": "aws.cloudtrail.error_code",
    "errorMessage": "aws.cloudtrail.error_message",
    "eventType": "aws.cloudtrail.event_type",
    "eventVersion": "aws.cloudtrail.event_version",
    "eventCategory": "aws.cloudtrail.event_category",
    "awsRegion": "cloud.region",
    "recipientAccountId": "aws.cloudtrail.recipient_account_id",
    "readOnly": "aws.cloudtrail.read_only",
    "managementEvent": "aws.cloudtrail.management_event",
    "requestID": "aws.cloudtrail.request_id",
    "sharedEventID": "aws.cloudtrail.shared_event_id",
    "vpcEndpointId": "aws.cloudtrail.vpc_endpoint_id",
    "userIdentity.type": "aws.cloudtrail.user_identity.type",
    "userIdentity.arn": "aws.cloudtrail.user_identity.arn",
    "userIdentity.principalId": "aws.cloudtrail.user_identity.principal_id",
    "userIdentity.accountId": "aws.cloudtrail.user_identity.account_id",
    "userIdentity.accessKeyId": "aws.cloudtrail.user_identity.access_key_id",
    "userIdentity.userName": "aws.cloudtrail.user_identity.user_name",
    "userIdentity.invokedBy": "aws.cloudtrail.user_identity.invoked_by",
    "userIdentity.sessionContext.attributes.mfaAuthenticated":
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    "userIdentity.sessionContext.attributes.creationDate":
        "aws.cloudtrail.user_identity.session_context.creation_date",
    **{
        f"userIdentity.sessionContext.sessionIssuer.{name}":
            f"aws.cloudtrail.user_identity.session_context.session_issuer.{ecs}"
        for name, ecs in (("type", "type"), ("arn", "arn"), ("principalId", "principal_id"),
                          ("accountId", "account_id"), ("userName", "user_name"))
    },
    "tlsDetails.tlsVersion": "aws.cloudtrail.tls_details.tls_version",
    "tlsDetails.cipherSuite": "aws.cloudtrail.tls_details.cipher_suite",
    "tlsDetails.clientProvidedHostHeader": "aws.cloudtrail.tls_details.client_provided_host_header",
}

# Prefixes whose sub-fields live in a JSON document (read with get_json_object) or a nested struct.
CLOUDTRAIL_PREFIXES: dict[str, str] = {
    "requestParameters": "aws.cloudtrail.request_parameters",
    "responseElements": "aws.cloudtrail.response_elements",
    "additionalEventData": "aws.cloudtrail.additional_eventdata",
    "serviceEventDetails": "aws.cloudtrail.service_event_details",
    "resources": "aws.cloudtrail.resources",
}

# Linux services that log through syslog under their own program name.
LINUX_SERVICE_PROGRAMS: dict[str, tuple[str, ...]] = {
    "sshd": ("sshd", "sshd-session", "sshd-auth"),  # OpenSSH 9.8+ logs under the last two
    "cron": ("cron", "crond"),
    "vsftpd": ("vsftpd",),
    "clamav": ("clamd", "freshclam", "clamav-milter"),
    "guacamole": ("guacd",),
}


# Sysmon for Linux EventData names (every event type it writes). Those with an ECS home map there, as
# Elastic's sysmon_linux pipeline renames them; the others are read from the JSON field winlog.event_data.
SYSMON_ECS_FIELDS: dict[str, str] = {
    "EventID": "event.code",
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ProcessGuid": "process.entity_id",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "ParentProcessGuid": "process.parent.entity_id",
    "User": "user.name",
    "TargetFilename": "file.path",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "SourceHostname": "source.domain",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "Protocol": "network.transport",
    "DestinationPortName": "network.protocol",
}
SYSMON_EVENT_DATA_NAMES: tuple[str, ...] = (
    "RuleName", "UtcTime", "FileVersion", "Description", "Product", "Company", "OriginalFileName", "LogonGuid",
    "LogonId", "TerminalSessionId", "IntegrityLevel", "Hashes", "ParentUser", "Initiated", "SourceIsIpv6",
    "SourcePortName", "DestinationIsIpv6", "CreationUtcTime", "IsExecutable", "Archived", "Device", "State",
    "Version", "SchemaVersion", "Configuration", "ConfigurationFileHash",
)
SYSMON_FIELDS: dict[str, str] = {
    **SYSMON_ECS_FIELDS, **{name: f"winlog.event_data.{name}" for name in SYSMON_EVENT_DATA_NAMES},
}
# Sigma linux categories served by Sysmon for Linux, with the Sysmon event ids of each.
SYSMON_CATEGORIES: dict[str, tuple[str, ...]] = {
    "process_creation": ("1",),
    "network_connection": ("3",),
    "process_termination": ("5",),
    "file_event": ("11",),
    "file_delete": ("23", "26"),
    "raw_access_thread": ("9",),
}
# auditd: the record type is a column; every other name is a key of the record (open-ended, ~200 names).
AUDITD_FIELDS: dict[str, str] = {"type": "auditd.log.record_type"}
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_\-\[\]]+$")
# Fields below a JSON document compare as strings: a Sigma number there is matched as its text.
_JSON_SUBFIELD = "^(?:" + "|".join(re.escape(name) for name in sorted(JSON_FIELDS)) + ")\\."


@dataclass(frozen=True)
class LogSourceRoute:
    """How one Sigma log source is served by our datasets."""

    name: str
    product: str
    service: str | None
    datasets: tuple[str, ...]
    raw_field: str  # where unbound keywords are searched
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    prefix_mapping: Mapping[str, str] = field(default_factory=dict)
    programs: tuple[str, ...] = ()  # extra condition: process.name in programs
    category: str | None = None
    conditions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra conditions: field in values
    open_prefix: str | None = None  # any other plain name (no dot) is a key below this JSON field
    json_numbers_as_strings: bool = False  # Sigma numbers compared with JSON sub-fields become strings

    def map_field(self, name: str) -> str:
        """The ECS name a Sigma field name is stored under (unmapped names pass through)."""
        if name in self.field_mapping:
            return self.field_mapping[name]
        for prefix, target in self.prefix_mapping.items():
            if name == prefix or name.startswith(prefix + "."):
                return target + name[len(prefix):]
        return self._open_name(name)

    def _open_name(self, name: str | None) -> str:
        if self.open_prefix and name and name not in FIELDS and _PLAIN_NAME.match(name):
            return f"{self.open_prefix}.{name}"
        return name or ""

    def pipeline(self) -> ProcessingPipeline:
        def condition() -> list[RuleProcessingCondition]:  # a condition object belongs to one item
            return [LogsourceCondition(product=self.product, service=self.service, category=self.category)]

        items: list[ProcessingItem] = []
        if self.open_prefix:
            open_name: Callable[[str | None], str] = self._open_name
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_fields",
                transformation=FieldFunctionTransformation(_mapping(self.field_mapping), open_name),
                rule_conditions=condition(),
            ))
        elif self.field_mapping:
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_fields",
                transformation=FieldMappingTransformation(_mapping(self.field_mapping)),
                rule_conditions=condition(),
            ))
        if self.prefix_mapping:
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_prefixes",
                transformation=FieldPrefixMappingTransformation(_mapping(self.prefix_mapping)),
                rule_conditions=condition(),
            ))
        if self.json_numbers_as_strings:
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_json_strings",
                transformation=ConvertTypeTransformation("str"),
                rule_conditions=condition(),
                field_name_conditions=[IncludeFieldCondition([_JSON_SUBFIELD], mode="re")],
            ))
        conditions = dict(self.conditions)
        if self.programs:
            conditions["process.name"] = self.programs
        for index, (name, values) in enumerate(conditions.items()):
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_condition_{index}",
                transformation=AddConditionTransformation({name: list(values)}),
                rule_conditions=condition(),
            ))
        return ProcessingPipeline(name=f"CitySOC {self.name}", priority=20, items=items)


def _mapping(mapping: Mapping[str, str]) -> dict[str | None, str | list[str]]:
    return {key: value for key, value in mapping.items()}


CLOUDTRAIL = LogSourceRoute(
    name="aws_cloudtrail", product="aws", service="cloudtrail", datasets=("aws.cloudtrail",),
    raw_field="event.original", field_mapping=CLOUDTRAIL_FIELDS, prefix_mapping=CLOUDTRAIL_PREFIXES,
)
LINUX_AUTH = LogSourceRoute(
    name="linux_auth", product="linux", service="auth", datasets=("system.auth",), raw_field="message",
)
LINUX_SYSLOG = LogSourceRoute(
    name="linux_syslog", product="linux", service="syslog", datasets=("system.auth", "system.syslog"),
    raw_field="message",
)
LINUX_ANY = LogSourceRoute(
    name="linux", product="linux", service=None, datasets=("system.auth", "system.syslog"), raw_field="message",
)


def _linux_program_route(service: str) -> LogSourceRoute:
    datasets = ("system.auth",) if service == "sshd" else ("system.auth", "system.syslog")
    return LogSourceRoute(
        name=f"linux_{service}", product="linux", service=service, datasets=datasets, raw_field="message",
        programs=LINUX_SERVICE_PROGRAMS[service],
    )


def _sysmon_route(category: str) -> LogSourceRoute:
    return LogSourceRoute(
        name=f"linux_{category}", product="linux", service=None, category=category,
        datasets=("sysmon_linux.log",), raw_field="message", field_mapping=SYSMON_FIELDS,
        conditions={"event.code": SYSMON_CATEGORIES[category]}, json_numbers_as_strings=True,
    )


LINUX_AUDITD = LogSourceRoute(
    name="linux_auditd", product="linux", service="auditd", datasets=("auditd.log",), raw_field="message",
    field_mapping=AUDITD_FIELDS, open_prefix="auditd.log.fields", json_numbers_as_strings=True,
)
LINUX_SYSMON_ROUTES: dict[str, LogSourceRoute] = {category: _sysmon_route(category) for category in SYSMON_CATEGORIES}


# --- cloud log sources ----------------------------------------------------------------------------
# Routes for the cloud and identity audit logs that `collectors.cloud` writes.
#
# Each maps SigmaHQ's field names to the ECS fields and dataset Elastic's integration for that source
# uses. Only names whose home in the native record is known are mapped; any other name makes its rule
# unsupported with `field X has no source in <dataset>`, rather than silently never matching
# (`docs/coverage/sigmahq.md` lists them with their reasons).
#
# - okta/okta -> `okta.system`: `eventType` -> `event.action`; the other names -> their snake_case path in
#   the JSON field `okta` (Elastic's `okta.*` layout: `debugContext.debugData.requestUri` ->
#   `okta.debug_context.debug_data.request_uri`).
# - m365/audit -> `o365.audit`: `Operation` -> `event.action`, `Workload` -> `event.provider`; any other
#   name -> its key in the JSON field `o365.audit` (the record as Microsoft writes it, Elastic's layout).
# - github/audit -> `github.audit`: `action` -> `event.action`; any other plain name -> its key in the JSON
#   field `github` (the event as GitHub writes it).
# - gcp/gcp.audit -> `gcp.audit`: `gcp.audit.method_name` (already the ECS name) and
#   `data.protoPayload.methodName/serviceName/resourceName` -> `gcp.audit.method_name/service_name/resource_name`.
# - azure/activitylogs -> `azure.activitylogs`: `operationName`/`OperationNameValue` ->
#   `azure.activitylogs.operation_name`, `CategoryValue` -> `azure.activitylogs.category`, `ResourceId` ->
#   `azure.resource.id`, `ResourceProviderValue` -> `azure.resource.provider`, `properties.*` -> the JSON
#   field `azure.activitylogs.properties`.
# - azure/signinlogs -> `azure.signinlogs`: SigmaHQ writes the Log Analytics `SigninLogs` column names;
#   `ResultType`/`ResultDescription` -> the record's `resultType`/`resultDescription`, the others -> their
#   place in `properties` (snake_case, as Elastic names them). `Status` is not mapped: in Log Analytics it
#   is an object shown as Success/Failure with its details, which no one field of the record answers.
# - azure/auditlogs -> `azure.auditlogs`: `OperationName`/`operationName`/`properties.message` (the
#   activity's display name in the rules) -> `azure.auditlogs.operation_name`; `Category` -> the audit's
#   category (`properties.category`: UserManagement, RoleManagement, ...), `Status` -> `properties.result`.
# - azure/riskdetection -> `azure.identity_protection`: `riskEventType` ->
#   `azure.identity_protection.properties.risk_event_type`.


OKTA_FIELDS: dict[str, str] = {
    "eventType": "event.action",
    **{name: f"okta.{snake_case(name)}" for name in (
        "displayMessage", "legacyEventType", "severity", "uuid", "version", "published",
        "outcome.result", "outcome.reason",
        "actor.id", "actor.type", "actor.alternateId", "actor.displayName",
        "client.ipAddress", "client.device", "client.zone", "client.userAgent.rawUserAgent",
        "client.geographicalContext.country", "client.geographicalContext.city",
        "debugContext.debugData.requestUri", "debugContext.debugData.behaviors",
        "debugContext.debugData.logOnlySecurityData", "debugContext.debugData.threatSuspected",
        "debugContext.debugData.riskLevel", "securityContext.isProxy", "securityContext.asOrg",
        "securityContext.isp", "securityContext.domain", "authenticationContext.authenticationProvider",
        "authenticationContext.credentialType", "transaction.id", "target.id", "target.type",
        "target.alternateId", "target.displayName",
    )},
}

OKTA = LogSourceRoute(
    name="okta", product="okta", service="okta", datasets=("okta.system",), raw_field="event.original",
    field_mapping=OKTA_FIELDS, json_numbers_as_strings=True,
)
O365_AUDIT = LogSourceRoute(
    name="m365_audit", product="m365", service="audit", datasets=("o365.audit",), raw_field="event.original",
    field_mapping={"Operation": "event.action", "Workload": "event.provider"}, open_prefix="o365.audit",
    json_numbers_as_strings=True,
)
GITHUB_AUDIT = LogSourceRoute(
    name="github_audit", product="github", service="audit", datasets=("github.audit",), raw_field="event.original",
    field_mapping={"action": "event.action"}, open_prefix="github", json_numbers_as_strings=True,
)
GCP_AUDIT = LogSourceRoute(
    name="gcp_audit", product="gcp", service="gcp.audit", datasets=("gcp.audit",), raw_field="event.original",
    field_mapping={
        "data.protoPayload.methodName": "gcp.audit.method_name",
        "data.protoPayload.serviceName": "gcp.audit.service_name",
        "data.protoPayload.resourceName": "gcp.audit.resource_name",
    },
)
AZURE_ACTIVITY = LogSourceRoute(
    name="azure_activitylogs", product="azure", service="activitylogs", datasets=("azure.activitylogs",),
    raw_field="event.original",
    field_mapping={
        "operationName": "azure.activitylogs.operation_name",
        "OperationNameValue": "azure.activitylogs.operation_name",
        "CategoryValue": "azure.activitylogs.category",
        "ResourceId": "azure.resource.id",
        "ResourceProviderValue": "azure.resource.provider",
    },
    prefix_mapping={"properties": "azure.activitylogs.properties"}, json_numbers_as_strings=True,
)
_SIGNIN_PROPERTIES = (
    "AuthenticationRequirement", "RiskState", "RiskLevelDuringSignIn", "RiskLevelAggregated", "RiskDetail",
    "ResourceDisplayName", "AppDisplayName", "AppId", "IsInteractive", "ConditionalAccessStatus",
    "NetworkLocationDetails", "AuthenticationProtocol", "UserType", "CrossTenantAccessType",
)
AZURE_SIGNIN_FIELDS: dict[str, str] = {
    "ResultType": "azure.signinlogs.result_type",
    "ResultDescription": "azure.signinlogs.result_description",
    "Resultdescription": "azure.signinlogs.result_description",
    "ResultSignature": "azure.signinlogs.result_signature",
    "OperationName": "azure.signinlogs.operation_name",
    "Category": "azure.signinlogs.category",
    "userAgent": "user_agent.original",
    "UserAgent": "user_agent.original",
    "IPAddress": "source.ip",
    "UserPrincipalName": "user.email",
    "UserId": "user.id",
    "UserDisplayName": "user.full_name",
    "ClientApp": "azure.signinlogs.properties.client_app_used",
    **{name: f"azure.signinlogs.properties.{snake_case(name[0].lower() + name[1:])}" for name in _SIGNIN_PROPERTIES},
    "conditionalAccessStatus": "azure.signinlogs.properties.conditional_access_status",
    **{f"DeviceDetail.{name}": f"azure.signinlogs.properties.device_detail.{target}" for name, target in (
        ("deviceId", "device_id"), ("isCompliant", "is_compliant"), ("isManaged", "is_managed"),
        ("trustType", "trust_type"), ("trusttype", "trust_type"), ("operatingSystem", "operating_system"),
        ("browser", "browser"), ("displayName", "display_name"))},
}
AZURE_SIGNIN = LogSourceRoute(
    name="azure_signinlogs", product="azure", service="signinlogs", datasets=("azure.signinlogs",),
    raw_field="event.original", field_mapping=AZURE_SIGNIN_FIELDS, json_numbers_as_strings=True,
)
AZURE_AUDIT_FIELDS: dict[str, str] = {
    "OperationName": "azure.auditlogs.operation_name",
    "operationName": "azure.auditlogs.operation_name",
    "properties.message": "azure.auditlogs.operation_name",
    "ActivityDisplayName": "azure.auditlogs.properties.activity_display_name",
    "Category": "azure.auditlogs.properties.category",
    "category": "azure.auditlogs.properties.category",
    "Status": "azure.auditlogs.properties.result",
    "properties.result": "azure.auditlogs.properties.result",
    "LoggedByService": "azure.auditlogs.properties.logged_by_service",
    "TargetResources": "azure.auditlogs.properties.target_resources",
    "properties.targetResources": "azure.auditlogs.properties.target_resources",
    "InitiatedBy": "azure.auditlogs.properties.initiated_by",
}
AZURE_AUDIT = LogSourceRoute(
    name="azure_auditlogs", product="azure", service="auditlogs", datasets=("azure.auditlogs",),
    raw_field="event.original", field_mapping=AZURE_AUDIT_FIELDS, json_numbers_as_strings=True,
)
AZURE_RISK = LogSourceRoute(
    name="azure_riskdetection", product="azure", service="riskdetection", datasets=("azure.identity_protection",),
    raw_field="event.original",
    field_mapping={"riskEventType": "azure.identity_protection.properties.risk_event_type"},
)

CLOUD_ROUTES: dict[tuple[str, str], LogSourceRoute] = {
    (route.product or "", route.service or ""): route
    for route in (OKTA, O365_AUDIT, GITHUB_AUDIT, GCP_AUDIT, AZURE_ACTIVITY, AZURE_SIGNIN, AZURE_AUDIT, AZURE_RISK)
}


def describe_logsource(logsource: SigmaLogSource) -> str:
    parts = [f"{key}={value}" for key, value in
             (("product", logsource.product), ("category", logsource.category), ("service", logsource.service))
             if value]
    return "/".join(parts) or "(empty)"


def find_route(logsource: SigmaLogSource) -> LogSourceRoute | None:
    """The route serving a Sigma log source, or None when we do not collect it."""
    product, service, category = logsource.product, logsource.service, logsource.category
    if product == "linux" and category is not None:
        return LINUX_SYSMON_ROUTES.get(category) if service is None else None
    if category is not None:
        return None
    if product == "aws" and service == "cloudtrail":
        return CLOUDTRAIL
    if (product or "", service or "") in CLOUD_ROUTES:
        return CLOUD_ROUTES[(product or "", service or "")]
    if product == "linux":
        if service is None:
            return LINUX_ANY
        if service == "auth":
            return LINUX_AUTH
        if service == "syslog":
            return LINUX_SYSLOG
        if service == "auditd":
            return LINUX_AUDITD
        if service in LINUX_SERVICE_PROGRAMS:
            return _linux_program_route(service)
    return None


ROUTES: tuple[LogSourceRoute, ...] = (
    CLOUDTRAIL, LINUX_AUTH, LINUX_SYSLOG, LINUX_ANY, *(_linux_program_route(s) for s in LINUX_SERVICE_PROGRAMS),
    LINUX_AUDITD, *LINUX_SYSMON_ROUTES.values(), *CLOUD_ROUTES.values(),
)
