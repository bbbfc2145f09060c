"""The whole case API schema: every table module, imported here so :data:`metadata` holds every table.

Alembic's environment and the tests read the schema from this module. Table modules import
``case_api.db.Base``, never this module, so importing it creates no cycle.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from case_api.alerts.models import Alert
from case_api.audit.models import AuditEntry, AuditHead
from case_api.auth.models import ApiKey, User
from case_api.campaigns.models import Campaign, CampaignCase
from case_api.cases.models import Case, CaseEvent
from case_api.cases.work_models import CaseComment, CaseObservable, CaseTask
from case_api.console.models import ConsoleSession
from case_api.db import Base
from case_api.incidents.models import AlertEntity
from case_api.notifications.models import Notification, NotificationAttempt, TenantContact
from case_api.sla.models import TenantContract
from case_api.sources.models import Source, SourceEvent
from case_api.tenants.models import Tenant

__all__ = [
    "Alert",
    "AlertEntity",
    "ApiKey",
    "AuditEntry",
    "AuditHead",
    "Campaign",
    "CampaignCase",
    "Case",
    "CaseComment",
    "CaseEvent",
    "CaseObservable",
    "CaseTask",
    "ConsoleSession",
    "Notification",
    "NotificationAttempt",
    "Source",
    "SourceEvent",
    "Tenant",
    "TenantContact",
    "TenantContract",
    "User",
    "metadata",
]

#: ``Base.metadata`` with every table above registered in it.
metadata: MetaData = Base.metadata
