"""The case page and its actions: assign to me, change status, resolve or close with a resolution, comment,
merge, tick tasks. Each action calls the service function the API's endpoint calls, with the case's version
from the page as ``If-Match``, so a change someone made since the page was read is refused, not overwritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from case_api.bounds import IdPath, Offset
from case_api.campaigns.service import case_campaigns
from case_api.cases.evidence import EventStoreUnavailableError, case_evidence, get_event_store
from case_api.cases.models import ALLOWED_TRANSITIONS, CasePatch, CaseStatus, Resolution
from case_api.cases.service import case_alerts, case_events, case_out, get_case, update_case
from case_api.cases.work import add_comment, list_comments, list_observables, list_tasks, merge_cases, set_task_status
from case_api.cases.work_models import MAX_COMMENT, TaskStatus
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
from case_api.db import SessionDep
from case_api.errors import CaseApiError, NotFoundError, PermissionDeniedError

router = APIRouter()

ALERTS_PAGE = 50
EVIDENCE_PAGE = 20
TIMELINE_PAGE = 200


@router.get("/cases/{case_id}", include_in_schema=False)
def case_page(request: Request, case_id: IdPath, session: SessionDep, user: ConsoleUserDep,
              alerts_offset: Offset = 0, evidence_offset: Offset = 0, events_offset: Offset = 0) -> HTMLResponse:
    timer = Timer(request)
    scope = scope_of(user)
    case = get_case(session=session, case_id=case_id, scope=scope)  # another member's case: 404, as in the API
    evidence, evidence_error = None, None
    try:
        evidence = case_evidence(session=session, case=case, store=get_event_store(request), limit=EVIDENCE_PAGE,
                                 offset=evidence_offset)
    except EventStoreUnavailableError as exc:
        evidence_error = exc.message
    out = case_out(session=session, case=case)
    context: dict[str, Any] = {
        "user": user,
        "case": out,
        "alerts": case_alerts(session=session, case=case, limit=ALERTS_PAGE + 1, offset=alerts_offset),
        "alerts_offset": alerts_offset,
        "evidence": evidence,
        "evidence_error": evidence_error,
        "evidence_offset": evidence_offset,
        "observables": list_observables(session=session, case_id=case.id, scope=scope),
        "comments": list_comments(session=session, case_id=case.id, scope=scope, limit=1000, offset=0),
        "tasks": list_tasks(session=session, case_id=case.id, scope=scope),
        "timeline": case_events(session=session, case=case, limit=TIMELINE_PAGE + 1, offset=events_offset),
        "events_offset": events_offset,
        "campaigns": case_campaigns(session=session, case_id=case.id, scope=scope),
        "transitions": sorted(ALLOWED_TRANSITIONS[out.status], key=list(CaseStatus).index),
        "resolutions": list(Resolution),
        "pages": {"alerts": ALERTS_PAGE, "evidence": EVIDENCE_PAGE, "events": TIMELINE_PAGE},
        "max_comment": MAX_COMMENT,
    }
    timer.lap("query")
    return render(request, "case.html", context, timer=timer)


def _act(session: Session, user: ConsoleUser, case_id: int, done: str,
         change: Callable[[], object]) -> RedirectResponse:
    """Run ``change``; its outcome is the next page's message. A case outside the caller's scope stays a 404 and
    a role that may not change cases a 403, as in the API; a refused change (workflow, version, input) is shown
    on the case page."""
    require_worker(user)
    try:
        change()
    except (NotFoundError, PermissionDeniedError):
        raise
    except CaseApiError as exc:
        session.rollback()
        set_flash(session=session, session_id=user.session_id, message=f"not done: {exc.message}", ok=False)
    except ValidationError as exc:
        session.rollback()
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ") if exc.errors() else str(exc)
        set_flash(session=session, session_id=user.session_id, message=f"not done: {reason}", ok=False)
    else:
        set_flash(session=session, session_id=user.session_id, message=done)
    return redirect(f"{CONSOLE_PREFIX}/cases/{case_id}")


def _version(form: Any) -> int | None:
    value = form_text(form, "version")
    return int(value) if value.isdigit() and len(value) < 10 else None


@router.post("/cases/{case_id}/assign-me", include_in_schema=False)
def assign_to_me(case_id: IdPath, session: SessionDep, user: ConsoleUserDep, form: CheckedForm) -> RedirectResponse:
    return _act(session, user, case_id, "assigned to you", lambda: update_case(
        session=session, case_id=case_id, scope=scope_of(user), patch=CasePatch(assignee=user.principal.user_id),
        actor=user.principal.actor, if_match=_version(form)))


@router.post("/cases/{case_id}/status", include_in_schema=False)
def change_status(case_id: IdPath, session: SessionDep, user: ConsoleUserDep, form: CheckedForm) -> RedirectResponse:
    status, resolution = form_text(form, "status"), form_text(form, "resolution")

    def change() -> object:
        patch = CasePatch.model_validate({"status": status, **({"resolution": resolution} if resolution else {})})
        return update_case(session=session, case_id=case_id, scope=scope_of(user), patch=patch,
                           actor=user.principal.actor, if_match=_version(form))

    return _act(session, user, case_id, f"status: {status}" + (f" ({resolution})" if resolution else ""), change)


@router.post("/cases/{case_id}/comments", include_in_schema=False)
def comment(case_id: IdPath, session: SessionDep, user: ConsoleUserDep, form: CheckedForm) -> RedirectResponse:
    body = form_text(form, "body")

    def change() -> object:
        if not body or len(body) > MAX_COMMENT:
            raise _InputError(f"a comment has 1 to {MAX_COMMENT} characters")
        return add_comment(session=session, case_id=case_id, scope=scope_of(user), body=body,
                           actor=user.principal.actor)

    return _act(session, user, case_id, "comment added", change)


@router.post("/cases/{case_id}/merge", include_in_schema=False)
def merge(case_id: IdPath, session: SessionDep, user: ConsoleUserDep, form: CheckedForm) -> RedirectResponse:
    sources = form_ints(form, "sources")
    return _act(session, user, case_id, f"merged {', '.join(f'#{s}' for s in sources)} into this case",
                lambda: merge_cases(session=session, target_id=case_id, source_ids=sources[:500], scope=scope_of(user),
                                    actor=user.principal.actor, if_match=_version(form)))


@router.post("/cases/{case_id}/tasks/{task_id}", include_in_schema=False)
def task(case_id: IdPath, task_id: IdPath, session: SessionDep, user: ConsoleUserDep,
         form: CheckedForm) -> RedirectResponse:
    wanted = form_text(form, "status")

    def change() -> object:
        if wanted not in {s.value for s in TaskStatus}:
            raise _InputError("a task is open or done")
        return set_task_status(session=session, case_id=case_id, task_id=task_id, scope=scope_of(user),
                               status=TaskStatus(wanted), actor=user.principal.actor)

    return _act(session, user, case_id, f"task {wanted}", change)


class _InputError(CaseApiError):
    status_code = 422
