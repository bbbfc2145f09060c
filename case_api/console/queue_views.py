"""The analysts' queue: filters, the rows fragment the page polls for new cases, and bulk actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from case_api.bounds import MAX_OFFSET, Offset
from case_api.campaigns.models import CampaignView
from case_api.campaigns.service import campaigns_by_case
from case_api.cases.models import CaseStatus, Resolution, Severity
from case_api.cases.queue import queue_page as read_queue
from case_api.cases.service import QueueFilter, known_assignees
from case_api.cases.work import bulk_change
from case_api.cases.work_models import BulkAction, BulkIn
from case_api.console.sessions import ConsoleUser, set_flash
from case_api.console.web import (
    CONSOLE_PREFIX,
    CheckedForm,
    ConsoleUserDep,
    Timer,
    form_ints,
    form_text,
    redirect,
    render,
    require_worker,
    scope_of,
)
from case_api.db import SessionDep, utcnow
from case_api.tenants.service import list_tenants

router = APIRouter()

#: Cases per queue page.
PAGE = 50
FILTER_NAMES = ("tenant", "status", "severity", "assignee", "sla")


@dataclass(frozen=True)
class QueueParams:
    """The queue's filters as the page's form sends them; a value the queue does not know is ignored."""

    tenant: str = ""
    status: str = "open"  # "open", "all" or a status
    severity: str = ""
    assignee: str = ""  # "", "me", "unassigned" or a user id
    sla: str = ""
    offset: int = 0

    @classmethod
    def parse(cls, *, tenant: str | None, status: str | None, severity: str | None, assignee: str | None,
              sla: str | None, offset: int) -> QueueParams:
        statuses = {s.value for s in CaseStatus} | {"open", "all"}
        return cls(
            tenant=(tenant or "").strip()[:63],
            status=status if status in statuses else "open",
            severity=severity if severity in {s.value for s in Severity} else "",
            assignee=(assignee or "").strip()[:200],
            sla=sla if sla in QueueFilter.SLA_STATES else "",
            offset=max(0, min(offset, MAX_OFFSET)),
        )

    def query(self) -> dict[str, Any]:
        """The filters as query parameters (without the offset)."""
        return {name: getattr(self, name) for name in FILTER_NAMES if getattr(self, name)}


@dataclass(frozen=True)
class QueueRow:
    case: dict[str, Any]  # CaseOut's keys without the clocks (cases/queue.py)
    campaigns: list[CampaignView]


def queue_rows(session: Session, user: ConsoleUser, params: QueueParams) -> tuple[list[QueueRow], bool]:
    """A page of the queue in the user's scope, and whether more follow."""
    status = CaseStatus(params.status) if params.status not in ("open", "all") else None
    assignee = user.principal.user_id if params.assignee == "me" else params.assignee
    filters = QueueFilter(
        severity=Severity(params.severity) if params.severity else None,
        assignee=assignee if assignee not in ("", "unassigned") else None,
        unassigned=assignee == "unassigned",
        sla_state=params.sla or None,
        now=utcnow(),
    )
    scope = scope_of(user)
    cases = read_queue(session=session, scope=scope, tenant_id=params.tenant or None, status=status,
                       open_only=params.status == "open", filters=filters, limit=PAGE + 1, offset=params.offset,
                       clocks=False)
    more = len(cases) > PAGE
    cases = cases[:PAGE]
    campaigns = campaigns_by_case(session=session, case_ids={case["id"] for case in cases}, scope=scope)
    return [QueueRow(case=case, campaigns=campaigns.get(case["id"], [])) for case in cases], more


Text = Annotated[str | None, Query(max_length=200)]


@router.get("/queue", include_in_schema=False)
def queue_page(request: Request, session: SessionDep, user: ConsoleUserDep, tenant: Text = None, status: Text = None,
               severity: Text = None, assignee: Text = None, sla: Text = None, offset: Offset = 0) -> HTMLResponse:
    timer = Timer(request)
    params = QueueParams.parse(tenant=tenant, status=status, severity=severity, assignee=assignee, sla=sla,
                               offset=offset)
    rows, more = queue_rows(session, user, params)
    timer.lap("query")
    scope = scope_of(user)
    tenants = list_tenants(session=session, scope=scope)
    assignees = known_assignees(session=session, tenant_ids=scope) if user.may_work else []
    return render(request, "queue.html", {
        "assignees": assignees,
        "user": user, "params": params, "rows": rows, "more": more, "tenants": tenants, "page": PAGE,
        "statuses": list(CaseStatus), "severities": list(Severity), "sla_states": QueueFilter.SLA_STATES,
        "resolutions": list(Resolution), "filter_query": params.query(),
    }, timer=timer)


@router.get("/queue/rows", include_in_schema=False)
def queue_fragment(request: Request, session: SessionDep, user: ConsoleUserDep, tenant: Text = None,
                   status: Text = None, severity: Text = None, assignee: Text = None, sla: Text = None,
                   offset: Offset = 0) -> HTMLResponse:
    """The queue's rows alone (a ``<tbody>``), which the page fetches every few seconds to show new cases."""
    timer = Timer(request)
    params = QueueParams.parse(tenant=tenant, status=status, severity=severity, assignee=assignee, sla=sla,
                               offset=offset)
    rows, more = queue_rows(session, user, params)
    timer.lap("query")
    return render(request, "queue_rows.html", {"user": user, "rows": rows, "more": more}, timer=timer)


@router.post("/queue/bulk", include_in_schema=False)
def queue_bulk(session: SessionDep, user: ConsoleUserDep, form: CheckedForm) -> RedirectResponse:
    """Assign, close with a resolution, or merge the ticked cases (the API's ``POST /cases/bulk``)."""
    principal = require_worker(user)
    back = {name: form_text(form, f"filter_{name}") for name in FILTER_NAMES}
    case_ids = form_ints(form, "case_ids")
    action = form_text(form, "action")
    message, ok = _bulk(session, user, action=action, case_ids=case_ids, form_values={
        "assignee": form_text(form, "assignee"), "resolution": form_text(form, "resolution"),
        "comment": form_text(form, "comment"), "into": form_text(form, "into"),
    }, actor=principal.actor)
    set_flash(session=session, session_id=user.session_id, message=message, ok=ok)
    return redirect(f"{CONSOLE_PREFIX}/queue", back)


def _bulk(session: Session, user: ConsoleUser, *, action: str, case_ids: list[int], form_values: dict[str, str],
          actor: str) -> tuple[str, bool]:
    if not case_ids:
        return "tick at least one case", False
    try:
        kind = BulkAction(action)
        assignee = form_values["assignee"]
        arguments: dict[str, Any] = {"action": kind, "case_ids": case_ids[:500]}
        if kind is BulkAction.ASSIGN:
            arguments["assignee"] = (user.principal.user_id if assignee == "me" else assignee) or None
        elif kind is BulkAction.CLOSE:
            arguments["resolution"] = form_values["resolution"] or None
            arguments["comment"] = form_values["comment"] or None
        else:
            into = form_values["into"]
            arguments["into"] = int(into) if into.isdigit() else None
        request = BulkIn.model_validate(arguments)
    except ValueError as exc:
        return f"cannot {action or 'do that'}: {_first_error(exc)}", False
    results = bulk_change(session=session, request=request, scope=scope_of(user), actor=actor)
    done = [r.case_id for r in results if r.ok]
    failed = [f"#{r.case_id}: {r.detail}" for r in results if not r.ok]
    message = f"{kind.value}: {len(done)} of {len(results)} cases done"
    if failed:
        message += "; refused " + "; ".join(failed[:10])
    return message, not failed


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)
