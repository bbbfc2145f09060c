"""Alert endpoints: the correlator posts here; analysts and tenants read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from case_api.alerts.models import AlertBatchIn, AlertBatchOut, AlertOut
from case_api.alerts.service import list_alerts
from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import ALERT_WRITERS, CASE_READERS
from case_api.bounds import DEFAULT_LIMIT, IdQuery, Limit, Offset
from case_api.campaigns.dependencies import CampaignRulesDep
from case_api.cases.flows import ingest_alerts
from case_api.db import SessionDep
from case_api.errors import InvalidRequestError
from case_api.incidents.dependencies import IncidentPolicyDep
from case_api.notifications.dependencies import SocContactsDep

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.post("", response_model=AlertBatchOut)
def post_alerts(
    batch: AlertBatchIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(*ALERT_WRITERS))],
    policy: IncidentPolicyDep,
    campaign_rules: CampaignRulesDep,
    soc_contacts: SocContactsDep,
) -> AlertBatchOut:
    """Store a batch of alerts, idempotent by (tenant, alert id).

    Each alert is checked on its own: an invalid one, or one of an unregistered tenant, is refused
    alone and listed in ``rejected`` with the reason, and the others are stored. A batch in which
    every alert is refused is answered 422. Each new alert joins its tenant's incident or, below the
    risk threshold, is held (``pending``).
    """
    result = ingest_alerts(
        session=session, raw_alerts=batch.alerts, actor=principal.actor, policy=policy, campaign_rules=campaign_rules,
        soc_contacts=soc_contacts,
    )
    if batch.alerts and len(result.rejected) == len(batch.alerts):
        reasons = "; ".join(f"alert {r.index} ({r.id}): {r.reason}" for r in result.rejected[:10])
        raise InvalidRequestError(f"no alert of the batch could be stored: {reasons}")
    return AlertBatchOut(
        created=result.created,
        duplicates=result.duplicates,
        cases=result.case_ids,
        pending=result.pending,
        rejected=result.rejected,
    )


@router.get(
    "",
    response_model=list[AlertOut],
    dependencies=[Depends(require_roles(*CASE_READERS))],
)
def get_alerts(
    session: SessionDep,
    scope: TenantScope,
    tenant: str | None = None,
    case_id: IdQuery = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[AlertOut]:
    """Newest alerts first, from the tenants the caller may see."""
    alerts = list_alerts(session=session, scope=scope, tenant_id=tenant, case_id=case_id, limit=limit, offset=offset)
    return [AlertOut.model_validate(a) for a in alerts]
