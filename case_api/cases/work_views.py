"""Endpoints for working a case: comments, tasks, observables, merge, and bulk actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from case_api.auth.dependencies import TenantScope, require_roles
from case_api.auth.models import Principal
from case_api.auth.roles import CASE_READERS, CASE_WORKERS
from case_api.bounds import DEFAULT_LIMIT, IdPath, Limit, Offset
from case_api.cases.models import CaseOut
from case_api.cases.service import case_out
from case_api.cases.versions import IfMatch, etag, parse_if_match
from case_api.cases.work import (
    add_comment,
    add_observable,
    add_task,
    bulk_change,
    list_comments,
    list_observables,
    list_tasks,
    merge_cases,
    set_task_status,
)
from case_api.cases.work_models import (
    BulkIn,
    BulkResult,
    CommentIn,
    CommentOut,
    MergeIn,
    ObservableIn,
    ObservableOut,
    TaskIn,
    TaskOut,
    TaskPatch,
)
from case_api.db import SessionDep

router = APIRouter(prefix="/cases", tags=["case work"])

Reader = Depends(require_roles(*CASE_READERS))
Worker = Annotated[Principal, Depends(require_roles(*CASE_WORKERS))]


@router.post("/bulk", response_model=list[BulkResult])
def post_bulk(request: BulkIn, session: SessionDep, scope: TenantScope, worker: Worker) -> list[BulkResult]:
    """Assign, close (with a resolution) or merge many cases in one request; each case's outcome is listed."""
    return bulk_change(session=session, request=request, scope=scope, actor=worker.actor)


@router.get("/{case_id}/comments", response_model=list[CommentOut], dependencies=[Reader])
def get_comments(case_id: IdPath, session: SessionDep, scope: TenantScope, limit: Limit = DEFAULT_LIMIT,
                 offset: Offset = 0) -> list[CommentOut]:
    comments = list_comments(session=session, case_id=case_id, scope=scope, limit=limit, offset=offset)
    return [CommentOut.model_validate(c) for c in comments]


@router.post("/{case_id}/comments", response_model=CommentOut, status_code=status.HTTP_201_CREATED)
def post_comment(case_id: IdPath, comment: CommentIn, session: SessionDep, scope: TenantScope,
                 worker: Worker) -> CommentOut:
    created = add_comment(session=session, case_id=case_id, scope=scope, body=comment.body, actor=worker.actor)
    return CommentOut.model_validate(created)


@router.get("/{case_id}/tasks", response_model=list[TaskOut], dependencies=[Reader])
def get_tasks(case_id: IdPath, session: SessionDep, scope: TenantScope) -> list[TaskOut]:
    """The case's tasks: the action steps of the playbooks its alerts match, and tasks added by hand."""
    return [TaskOut.model_validate(t) for t in list_tasks(session=session, case_id=case_id, scope=scope)]


@router.post("/{case_id}/tasks", response_model=TaskOut, status_code=status.HTTP_201_CREATED)
def post_task(case_id: IdPath, task: TaskIn, session: SessionDep, scope: TenantScope, worker: Worker) -> TaskOut:
    return TaskOut.model_validate(add_task(session=session, case_id=case_id, scope=scope, title=task.title,
                                           actor=worker.actor))


@router.patch("/{case_id}/tasks/{task_id}", response_model=TaskOut)
def patch_task(case_id: IdPath, task_id: IdPath, patch: TaskPatch, session: SessionDep, scope: TenantScope,
               worker: Worker) -> TaskOut:
    task = set_task_status(session=session, case_id=case_id, task_id=task_id, scope=scope, status=patch.status,
                           actor=worker.actor)
    return TaskOut.model_validate(task)


@router.get("/{case_id}/observables", response_model=list[ObservableOut], dependencies=[Reader])
def get_observables(case_id: IdPath, session: SessionDep, scope: TenantScope) -> list[ObservableOut]:
    """IPs, domains, users, hosts, hashes and cloud accounts of the case, each with its TLP."""
    return [ObservableOut.model_validate(o) for o in list_observables(session=session, case_id=case_id, scope=scope)]


@router.post("/{case_id}/observables", response_model=ObservableOut, status_code=status.HTTP_201_CREATED)
def post_observable(case_id: IdPath, observable: ObservableIn, session: SessionDep, scope: TenantScope,
                    worker: Worker) -> ObservableOut:
    """Add an observable (or change the TLP of one the case has)."""
    created = add_observable(session=session, case_id=case_id, scope=scope, observable=observable, actor=worker.actor)
    return ObservableOut.model_validate(created)


@router.post("/{case_id}/merge", response_model=CaseOut)
def post_merge(case_id: IdPath, merge: MergeIn, session: SessionDep, scope: TenantScope, worker: Worker,
               response: Response, if_match: IfMatch = None) -> CaseOut:
    """Merge other cases of the same member into this one: their alerts and observables move here and
    each is closed as a duplicate of this case."""
    case = merge_cases(session=session, target_id=case_id, source_ids=merge.sources, scope=scope, actor=worker.actor,
                       if_match=parse_if_match(if_match))
    response.headers["ETag"] = etag(case)
    return case_out(session=session, case=case)
