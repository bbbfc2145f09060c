"""Routes for cloud log sources that have a field mapping but no collector yet.

Each maps SigmaHQ's field names to the ECS fields and dataset Elastic's integration for that source
uses, so the rules compile now and run once a collector writes the dataset (`docs/coverage/sigmahq.md`
marks them "mapping only"). Only names whose Elastic home is known are mapped; any other name makes
its rule unsupported with `field X has no source in <dataset>`, rather than silently never matching.

- okta/okta -> `okta.system`: `eventType` -> `event.action`; any other name -> its snake_case path in the
  JSON field `okta` (Elastic's `okta.*` layout: `debugContext.debugData.requestUri` ->
  `okta.debug_context.debug_data.request_uri`).
- m365/audit -> `o365.audit`: `Operation` -> `event.action`, `Workload` -> `event.provider`; any other
  name -> its key in the JSON field `o365.audit` (the record as Microsoft writes it, Elastic's layout).
- github/audit -> `github.audit`: `action` -> `event.action`.
- gcp/gcp.audit -> `gcp.audit`: `gcp.audit.method_name` (already the ECS name) and
  `data.protoPayload.methodName/serviceName/resourceName` -> `gcp.audit.method_name/service_name/resource_name`.
- azure/activitylogs -> `azure.activitylogs`: `operationName`/`OperationNameValue` ->
  `azure.activitylogs.operation_name`, `CategoryValue` -> `azure.activitylogs.category`, `ResourceId` ->
  `azure.resource.id`, `ResourceProviderValue` -> `azure.resource.provider`, `properties.*` -> the JSON
  field `azure.activitylogs.properties`.
- azure/riskdetection -> `azure.identity_protection`: `riskEventType` ->
  `azure.identity_protection.properties.risk_event_type`.
"""

from __future__ import annotations

import re

from correlator.pipelines import LogSourceRoute

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """`debugContext.debugData.requestUri` -> `debug_context.debug_data.request_uri` (Elastic's okta names)."""
    return ".".join(_CAMEL.sub("_", part).lower() for part in name.split("."))


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
    field_mapping={"action": "event.action"},
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
AZURE_RISK = LogSourceRoute(
    name="azure_riskdetection", product="azure", service="riskdetection", datasets=("azure.identity_protection",),
    raw_field="event.original",
    field_mapping={"riskEventType": "azure.identity_protection.properties.risk_event_type"},
)

CLOUD_ROUTES: dict[tuple[str, str], LogSourceRoute] = {
    (route.product or "", route.service or ""): route
    for route in (OKTA, O365_AUDIT, GITHUB_AUDIT, GCP_AUDIT, AZURE_ACTIVITY, AZURE_RISK)
}
