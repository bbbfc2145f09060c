"""Azure Activity logs and Microsoft Entra ID sign-in, audit and risk logs -> ECS, as Elastic's azure
integration maps them (`azure.activitylogs`, `azure.signinlogs`, `azure.auditlogs`,
`azure.identity_protection`).

Native shape: what a diagnostic setting streams to Event Hub (or writes to a storage account): a message
body `{"records": [...]}` whose records carry `time`, `category`, `operationName`, `resultType`,
`callerIpAddress`, `correlationId`, `tenantId` or `resourceId`, `identity` and `properties`; records one
by one or as NDJSON are taken too, and so are Microsoft Graph's `signIn` and `directoryAudit` objects
(as the Entra admin center downloads them). The `category` decides the dataset, whichever of the three
parsers reads the record: one Event Hub may carry all of them. Risk records (`UserRiskEvents`, `RiskyUsers`,
and their service-principal twins) keep `properties.riskEventType` and the risk level, state and detail
under `azure.identity_protection.properties.*`. A resource log of another service
(`kube-audit`, `StorageRead`, ...) is refused with its category.

Sign-ins: `properties.id` is `event.id`; `resultType` 0 is success, any other code failure;
`properties.userPrincipalName` is `user.*`, `properties.ipAddress` `source.ip`. Audits:
`properties.id` is `event.id`, `properties.result` the outcome, `properties.initiatedBy.user` `user.*`,
the first target resource of type User `user.target.*`. Their `properties` keep Elastic's snake_case names
(`azure.signinlogs.properties.authentication_requirement`). Activity logs: `correlationId` is shared by
the records of one operation (Started, Succeeded), so it is kept in `azure.correlation_id` and never used
as `event.id`; the same holds for the Entra records, whose own `properties.id` is the id.
"""

from __future__ import annotations

from typing import Any

from collectors.base import register_parser
from collectors.cloud.base import (
    CloudAuditParser,
    Flat,
    compact_json,
    dig,
    mapping,
    parse_time,
    related_users,
    snake_keys,
    source_fields,
    text,
    user_fields,
)
from collectors.errors import UnparsableRecordError

ACTIVITY, SIGNIN, AUDIT = "azure.activitylogs", "azure.signinlogs", "azure.auditlogs"
RISK = "azure.identity_protection"
RISK_CATEGORIES = frozenset({"UserRiskEvents", "RiskyUsers", "ServicePrincipalRiskEvents", "RiskyServicePrincipals"})
DATASETS = (ACTIVITY, SIGNIN, AUDIT, RISK)
SIGNIN_CATEGORIES = frozenset({"SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs",
                               "ManagedIdentitySignInLogs", "ADFSSignInLogs"})
# The storage / Event Hub schema writes an Administrative event's category as Write, Delete or Action.
ACTIVITY_CATEGORIES = frozenset({"Administrative", "Security", "ServiceHealth", "Alert", "Recommendation", "Policy",
                                 "Autoscale", "ResourceHealth", "Write", "Delete", "Action"})
_UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
_OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_SUCCESS = {"success", "succeeded", "0"}
_FAILURE = {"failure", "failed"}


def dataset_of(record: dict[str, Any]) -> str:
    category = record.get("category")
    if category == "AuditLogs":
        return AUDIT
    if category in SIGNIN_CATEGORIES:
        return SIGNIN
    if category in ACTIVITY_CATEGORIES:
        return ACTIVITY
    if category in RISK_CATEGORIES:
        return RISK
    if category is None:
        raise UnparsableRecordError("record lacks category: expected an Azure Event Hub record (time, category, "
                                    "operationName, properties, ...)")
    raise UnparsableRecordError(
        f"category {str(category)[:60]!r} is a resource log of another service, not an Activity log or an Entra "
        f"sign-in, audit or risk record: no parser maps it")


def _from_graph(record: dict[str, Any]) -> dict[str, Any]:
    """Microsoft Graph `signIn` / `directoryAudit` objects in the Event Hub record's form."""
    if "category" in record and "time" in record:
        return record
    if "activityDateTime" in record and "activityDisplayName" in record:
        return {"time": record["activityDateTime"], "category": "AuditLogs",
                "operationName": record["activityDisplayName"], "correlationId": record.get("correlationId"),
                "properties": record}
    if "createdDateTime" in record and "userPrincipalName" in record and "status" in record:
        code = dig(record, "status", "errorCode")
        return {"time": record["createdDateTime"], "category": "SignInLogs", "operationName": "Sign-in activity",
                "resultType": None if code is None else str(code), "correlationId": record.get("correlationId"),
                "callerIpAddress": record.get("ipAddress"), "properties": record}
    return record


class AzureParser(CloudAuditParser):
    """Azure diagnostic-settings records: Event Hub bodies `{"records": [...]}`, NDJSON, single records."""

    line_records = False
    shape = "an Azure Event Hub record (time, category, operationName, properties, ...)"

    def unwrap(self, document: Any) -> list[Any] | None:
        if isinstance(document, dict) and isinstance(document.get("records"), list):
            return list(document["records"])
        if isinstance(document, dict) and isinstance(document.get("value"), list):  # a Graph API page
            return list(document["value"])
        return None

    def fields(self, record: dict[str, Any]) -> tuple[str, Flat]:
        record = _from_graph(record)
        dataset = dataset_of(record)
        if not record.get("time"):
            raise UnparsableRecordError(f"record lacks time: expected {self.shape}")
        properties = mapping(record.get("properties"))
        common: Flat = {
            "@timestamp": parse_time(record["time"], "time"),
            "event.module": "azure",
            "cloud.provider": "azure",
            "azure.tenant_id": text(record.get("tenantId")),
            "azure.correlation_id": text(record.get("correlationId")),
            "azure.resource.id": text(record.get("resourceId")),
            **source_fields(_address(record.get("callerIpAddress"))),
        }
        if dataset == SIGNIN:
            return dataset, {**common, **_signin(record, properties)}
        if dataset == AUDIT:
            return dataset, {**common, **_audit(record, properties)}
        if dataset == RISK:
            return dataset, {**common, **_risk(record, properties)}
        return dataset, {**common, **_activity(record, properties)}


def _address(value: Any) -> Any:
    return None if value in ("<null>", "") else value


def _signin(record: dict[str, Any], properties: dict[str, Any]) -> Flat:
    # resultType is the sign-in's error code (0: success); where a record carries a word there instead, the
    # code in properties.status.errorCode is the one the rules compare with
    result_type = text(record.get("resultType"))
    code = dig(properties, "status", "errorCode")
    if (result_type is None or not result_type.isdigit()) and isinstance(code, int) and not isinstance(code, bool):
        result_type = str(code)
    lowered = (result_type or "").lower()
    outcome = ("success" if lowered in _SUCCESS else "failure" if lowered.isdigit() or lowered in _FAILURE
               else None)
    upn = properties.get("userPrincipalName")
    address = _address(properties.get("ipAddress")) or _address(record.get("callerIpAddress"))
    return {
        "event.id": text(properties.get("id")),
        "event.action": text(record.get("operationName")),
        "event.category": ["authentication"],
        "event.outcome": outcome,
        "cloud.account.id": text(record.get("tenantId")),
        "user_agent.original": text(properties.get("userAgent")),
        "azure.signinlogs.operation_name": text(record.get("operationName")),
        "azure.signinlogs.category": text(record.get("category")),
        "azure.signinlogs.result_type": result_type,
        "azure.signinlogs.result_signature": text(record.get("resultSignature")),
        "azure.signinlogs.result_description": text(record.get("resultDescription")
                                                    or dig(properties, "status", "failureReason")),
        "azure.signinlogs.properties": compact_json(snake_keys(properties)),
        **source_fields(address),
        **user_fields(upn, user_id=properties.get("userId"), full_name=properties.get("userDisplayName")),
        "related.user": related_users(upn),
    }


def _audit(record: dict[str, Any], properties: dict[str, Any]) -> Flat:
    initiator = mapping(dig(properties, "initiatedBy", "user"))
    app = mapping(dig(properties, "initiatedBy", "app"))
    found = properties.get("targetResources")
    targets: list[Any] = found if isinstance(found, list) else []
    target = next((mapping(item) for item in targets if mapping(item).get("type") == "User"), {})
    result = properties.get("result")
    result_text = text(result)
    outcome = (("success" if result_text.lower() in _SUCCESS else "failure" if result_text.lower() in _FAILURE
                else "unknown") if result_text else None)
    upn = initiator.get("userPrincipalName")
    address = _address(initiator.get("ipAddress")) or _address(record.get("callerIpAddress"))
    flat: Flat = {
        "event.id": text(properties.get("id")),
        "event.action": text(record.get("operationName") or properties.get("activityDisplayName")),
        "event.category": ["iam"],
        "event.outcome": outcome,
        "cloud.account.id": text(record.get("tenantId")),
        "azure.auditlogs.operation_name": text(record.get("operationName")),
        "azure.auditlogs.category": text(record.get("category")),
        "azure.auditlogs.result_signature": text(record.get("resultSignature")),
        "azure.auditlogs.properties": compact_json(snake_keys(properties)),
        **source_fields(address),
        **user_fields(upn or app.get("displayName"), user_id=initiator.get("id") or app.get("servicePrincipalId"),
                      full_name=initiator.get("displayName")),
        **user_fields(target.get("userPrincipalName"), user_id=target.get("id"), prefix="user.target"),
        "related.user": related_users(upn, target.get("userPrincipalName")),
    }
    flat.pop("user.target.full_name", None)
    flat.pop("user.target.domain", None)
    return flat


def _risk(record: dict[str, Any], properties: dict[str, Any]) -> Flat:
    upn = properties.get("userPrincipalName")
    address = _address(properties.get("ipAddress")) or _address(record.get("callerIpAddress"))
    prefix = "azure.identity_protection.properties."
    return {
        "event.id": text(properties.get("id")),
        "event.action": text(record.get("operationName")),
        "event.category": ["iam"],
        "cloud.account.id": text(record.get("tenantId")),
        "azure.identity_protection.operation_name": text(record.get("operationName")),
        "azure.identity_protection.category": text(record.get("category")),
        **{prefix + name: text(properties.get(key)) for name, key in (
            ("risk_event_type", "riskEventType"), ("risk_level", "riskLevel"), ("risk_state", "riskState"),
            ("risk_detail", "riskDetail"), ("activity", "activity"), ("source", "source"),
            ("detection_timing_type", "detectionTimingType"))},
        prefix + "additional_info": compact_json(properties.get("additionalInfo")),
        **source_fields(address),
        **user_fields(upn, user_id=properties.get("userId"), full_name=properties.get("userDisplayName")),
        "related.user": related_users(upn),
    }


def _activity(record: dict[str, Any], properties: dict[str, Any]) -> Flat:
    identity = record.get("identity")
    claims = mapping(mapping(identity).get("claims"))
    caller = claims.get(_UPN_CLAIM) or claims.get(_NAME_CLAIM) or properties.get("caller")
    resource_id = text(record.get("resourceId"))
    subscription = provider = None
    if resource_id:
        parts = resource_id.split("/")
        upper = [part.upper() for part in parts]
        if "SUBSCRIPTIONS" in upper and upper.index("SUBSCRIPTIONS") + 1 < len(parts):
            subscription = parts[upper.index("SUBSCRIPTIONS") + 1]
        if "PROVIDERS" in upper and upper.index("PROVIDERS") + 2 < len(parts):
            start = upper.index("PROVIDERS") + 1
            provider = "/".join(parts[start: start + 2])
    result_type = text(record.get("resultType"))
    outcome = (("success" if result_type.lower() in _SUCCESS else "failure" if result_type.lower() in _FAILURE
                else "unknown") if result_type else None)
    return {
        "event.action": text(record.get("operationName")),
        "event.outcome": outcome,
        "cloud.account.id": subscription,
        "azure.resource.provider": provider,
        "azure.activitylogs.operation_name": text(record.get("operationName")),
        "azure.activitylogs.category": text(record.get("category")),
        "azure.activitylogs.result_type": result_type,
        "azure.activitylogs.result_signature": text(record.get("resultSignature")),
        "azure.activitylogs.identity": compact_json(identity),
        "azure.activitylogs.properties": compact_json(properties),
        **user_fields(caller, user_id=claims.get(_OBJECT_ID_CLAIM)),
        "related.user": related_users(caller),
    }


@register_parser
class AzureActivityLogsParser(AzureParser):
    name = ACTIVITY
    aliases = ("azure-activity",)
    datasets = DATASETS


@register_parser
class AzureSignInLogsParser(AzureParser):
    name = SIGNIN
    aliases = ("entra-signin",)
    datasets = (SIGNIN, ACTIVITY, AUDIT, RISK)


@register_parser
class AzureAuditLogsParser(AzureParser):
    name = AUDIT
    aliases = ("entra-audit",)
    datasets = (AUDIT, ACTIVITY, SIGNIN, RISK)


@register_parser
class AzureIdentityProtectionParser(AzureParser):
    name = RISK
    aliases = ("entra-risk",)
    datasets = (RISK, ACTIVITY, SIGNIN, AUDIT)
