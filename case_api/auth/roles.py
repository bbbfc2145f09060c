"""Which roles may do what. Tenant visibility is decided separately, by the tenant scope."""

from __future__ import annotations

from case_api.auth.models import Role

#: May read cases and alerts (tenant roles only within their tenant).
CASE_READERS = (
    Role.ADMIN,
    Role.SOC_LEAD,
    Role.SOC_ANALYST,
    Role.TENANT_RESPONDER,
    Role.TENANT_VIEWER,
)
#: May change a case's status or assignee (tenant responders only within their tenant).
CASE_WORKERS = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST, Role.TENANT_RESPONDER)
#: May post alerts for any tenant.
ALERT_WRITERS = (Role.ADMIN, Role.SERVICE)
#: May register a source (tenant responders only for their own tenant; service: collectors onboarding).
SOURCE_WRITERS = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST, Role.TENANT_RESPONDER, Role.SERVICE)
#: May change or remove a source, or issue its token again (tenant responders only their own tenant's).
SOURCE_MANAGERS = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST, Role.TENANT_RESPONDER)
#: May list sources and their data health (tenant roles only their own tenant's; rule authors for coverage).
SOURCE_READERS = (*SOURCE_WRITERS, Role.TENANT_VIEWER, Role.RULE_AUTHOR)
#: May read every source's access data (token digests, certificate fingerprints, networks): the intake.
SOURCE_ACCESS_READERS = (Role.ADMIN, Role.SERVICE)
#: May read dead letters (raw records) and the sources' audit trail (tenant roles only their own tenant's).
DEAD_LETTER_READERS = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST, Role.TENANT_RESPONDER, Role.TENANT_VIEWER)
SOURCE_AUDIT_READERS = DEAD_LETTER_READERS
#: May read the deployment's audit log (users, keys, tenants, sources, cases) and check its chain.
AUDIT_READERS = (Role.ADMIN, Role.SOC_LEAD)
AUDIT_VERIFIERS = AUDIT_READERS
