"""Sigma log sources -> our datasets, and Sigma field names -> our ECS storage.

A `LogSourceRoute` says which datasets serve a Sigma log source, where unbound keywords are searched,
which extra condition narrows the datasets to the log source (sshd is `process.name = sshd` inside
`system.auth`), and how the source's native field names map to ECS. Its `pipeline()` is an ordinary
pySigma `ProcessingPipeline`, usable with any backend (e.g. sigma-cli).

ECS names pass through unchanged, so our own rules can use `source.ip` or `system.auth.ssh.event`.
Whether a mapped name exists in the event schema is decided by the backend, which knows the schema
(`CitySocSparkBackend.resolve_field`): an unknown field makes the rule unsupported, never a run-time
failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sigma.processing.conditions import LogsourceCondition, RuleProcessingCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldMappingTransformation,
    FieldPrefixMappingTransformation,
)
from sigma.rule import SigmaLogSource

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
    "sshd": ("sshd",),
    "cron": ("cron", "crond"),
    "vsftpd": ("vsftpd",),
    "clamav": ("clamd", "freshclam", "clamav-milter"),
    "guacamole": ("guacd",),
}


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

    def map_field(self, name: str) -> str:
        """The ECS name a Sigma field name is stored under (unmapped names pass through)."""
        if name in self.field_mapping:
            return self.field_mapping[name]
        for prefix, target in self.prefix_mapping.items():
            if name == prefix or name.startswith(prefix + "."):
                return target + name[len(prefix):]
        return name

    def pipeline(self) -> ProcessingPipeline:
        def condition() -> list[RuleProcessingCondition]:  # a condition object belongs to one item
            return [LogsourceCondition(product=self.product, service=self.service)]

        items: list[ProcessingItem] = []
        if self.field_mapping:
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
        if self.programs:
            items.append(ProcessingItem(
                identifier=f"citysoc_{self.name}_program",
                transformation=AddConditionTransformation({"process.name": list(self.programs)}),
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


def describe_logsource(logsource: SigmaLogSource) -> str:
    parts = [f"{key}={value}" for key, value in
             (("product", logsource.product), ("category", logsource.category), ("service", logsource.service))
             if value]
    return "/".join(parts) or "(empty)"


def route_for(logsource: SigmaLogSource) -> LogSourceRoute | None:
    """The route serving a Sigma log source, or None when we do not collect it."""
    product, service, category = logsource.product, logsource.service, logsource.category
    if category is not None:
        return None  # process_creation, file_event, ... need an EDR/auditd source we do not collect
    if product == "aws" and service == "cloudtrail":
        return CLOUDTRAIL
    if product == "linux":
        if service is None:
            return LINUX_ANY
        if service == "auth":
            return LINUX_AUTH
        if service == "syslog":
            return LINUX_SYSLOG
        if service in LINUX_SERVICE_PROGRAMS:
            return _linux_program_route(service)
    return None


ROUTES: tuple[LogSourceRoute, ...] = (
    CLOUDTRAIL, LINUX_AUTH, LINUX_SYSLOG, LINUX_ANY, *(_linux_program_route(s) for s in LINUX_SERVICE_PROGRAMS),
)
