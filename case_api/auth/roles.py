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
