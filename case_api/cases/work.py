"""Working a case: comments, tasks, observables, merging, and one action on many cases. Every change is audited."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from case_api.alerts.models import Alert
from case_api.cases.models import Case, CaseAction, CasePatch, CaseStatus, Resolution, Severity
from case_api.cases.service import get_case, record_event, update_case
from case_api.cases.work_models import (
    BulkAction,
    BulkIn,
    BulkResult,
    CaseComment,
    CaseObservable,
    CaseTask,
    ObservableIn,
    TaskStatus,
)
from case_api.db import insert_for, utcnow
from case_api.errors import CaseApiError, ConflictError, InvalidRequestError, NotFoundError, PreconditionFailedError
from case_api.sla.clocks import acknowledge, change_status
from case_api.sla.service import refresh_case

Scope = Collection[str] | None


def add_comment(*, session: Session, case_id: int, scope: Scope, body: str, actor: str) -> CaseComment:
    case = get_case(session=session, case_id=case_id, scope=scope)
    comment = CaseComment(case_id=case.id, author=actor, body=body, at=utcnow())
    session.add(comment)
    session.flush()
    record_event(session=session, case_id=case.id, actor=actor, action=CaseAction.COMMENTED,
                 detail={"comment_id": comment.id})
    session.commit()
    return comment


def list_comments(*, session: Session, case_id: int, scope: Scope, limit: int, offset: int) -> list[CaseComment]:
    case = get_case(session=session, case_id=case_id, scope=scope)
    query = select(CaseComment).where(CaseComment.case_id == case.id).order_by(CaseComment.id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def add_task(*, session: Session, case_id: int, scope: Scope, title: str, actor: str) -> CaseTask:
    case = get_case(session=session, case_id=case_id, scope=scope)
    task = CaseTask(case_id=case.id, title=title, status=TaskStatus.OPEN.value, playbook_id="",
                    step_id=f"manual-{utcnow().timestamp()}", created_at=utcnow())
    session.add(task)
    session.flush()
    task.step_id = f"manual-{task.id}"
    record_event(session=session, case_id=case.id, actor=actor, action=CaseAction.TASK_ADDED,
                 detail={"task_id": task.id, "title": title})
    session.commit()
    return task


def list_tasks(*, session: Session, case_id: int, scope: Scope) -> list[CaseTask]:
    case = get_case(session=session, case_id=case_id, scope=scope)
    return list(session.scalars(select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.id)))


def set_task_status(
    *, session: Session, case_id: int, task_id: int, scope: Scope, status: TaskStatus, actor: str
) -> CaseTask:
    case = get_case(session=session, case_id=case_id, scope=scope)
    task = session.scalars(
        select(CaseTask).where(CaseTask.id == task_id, CaseTask.case_id == case.id).with_for_update()
    ).first()
    if task is None:
        raise NotFoundError(f"task {task_id} not found in case {case_id}")
    if task.status != status.value:
        record_event(session=session, case_id=case.id, actor=actor, action=CaseAction.TASK_CHANGED,
                     detail={"task_id": task.id, "from": task.status, "to": status.value})
        task.status = status.value
        task.done_at = utcnow() if status is TaskStatus.DONE else None
        task.done_by = actor if status is TaskStatus.DONE else None
        session.commit()
    return task


def add_observable(*, session: Session, case_id: int, scope: Scope, observable: ObservableIn,
                   actor: str) -> CaseObservable:
    """Add an observable, or set the TLP of one the case has already."""
    case = get_case(session=session, case_id=case_id, scope=scope)
    existing = session.scalars(
        select(CaseObservable).where(CaseObservable.case_id == case.id, CaseObservable.kind == observable.kind.value,
                                     CaseObservable.value == observable.value)
    ).first()
    if existing is None:
        existing = CaseObservable(case_id=case.id, tenant_id=case.tenant_id, kind=observable.kind.value,
                                  value=observable.value, tlp=observable.tlp.value, source=actor, created_at=utcnow())
        session.add(existing)
    elif existing.tlp == observable.tlp.value:
        return existing
    existing.tlp = observable.tlp.value
    record_event(session=session, case_id=case.id, actor=actor, action=CaseAction.OBSERVABLE_ADDED,
                 detail={"kind": observable.kind.value, "value": observable.value, "tlp": observable.tlp.value})
    session.commit()
    return existing


def list_observables(*, session: Session, case_id: int, scope: Scope) -> list[CaseObservable]:
    case = get_case(session=session, case_id=case_id, scope=scope)
    query = select(CaseObservable).where(CaseObservable.case_id == case.id)
    return list(session.scalars(query.order_by(CaseObservable.kind, CaseObservable.value)))


def merge_cases(
    *, session: Session, target_id: int, source_ids: Sequence[int], scope: Scope, actor: str,
    if_match: int | None = None,
) -> Case:
    """Merge ``source_ids`` into ``target_id``: their alerts and observables move to the target, and each
    source is closed as a duplicate pointing at it. All cases belong to one tenant; the target is open.

    One transaction; a source or target changed meanwhile (its version) fails it with 412 when
    ``if_match`` named the target's version, else with 409 to be retried.
    """
    sources = sorted(set(source_ids) - {target_id})
    if not sources:
        raise InvalidRequestError("name at least one case other than the target to merge")
    try:
        target = get_case(session=session, case_id=target_id, scope=scope, for_update=True)
        if if_match is not None and target.version != if_match:
            raise PreconditionFailedError(f"case {target_id} is at version {target.version}, not {if_match}")
        if not CaseStatus(target.status).is_open:
            raise ConflictError(f"case {target_id} is {target.status}: merge into an open case")
        merged: list[int] = []
        for source_id in sources:
            source = get_case(session=session, case_id=source_id, scope=scope, for_update=True)
            if source.tenant_id != target.tenant_id:
                raise InvalidRequestError(
                    f"case {source_id} belongs to another member than case {target_id}: only one member's cases merge"
                )
            if source.status == CaseStatus.CLOSED.value:
                raise ConflictError(f"case {source_id} is closed already and cannot be merged")
            _move_into(session=session, source=source, target=target, actor=actor)
            merged.append(source_id)
        record_event(session=session, case_id=target.id, actor=actor, action=CaseAction.MERGED,
                     detail={"cases": merged})
        target.updated_at = utcnow()
        acknowledge(target, target.updated_at)
        refresh_case(session=session, case=target)
        session.flush()
        session.commit()
    except StaleDataError:
        session.rollback()
        raise (PreconditionFailedError if if_match is not None else ConflictError)(
            "a case of the merge changed while it was written: read them again and retry"
        ) from None
    except CaseApiError:
        session.rollback()
        raise
    return target


def _move_into(*, session: Session, source: Case, target: Case, actor: str) -> None:
    moved = session.execute(
        update(Alert).where(Alert.tenant_id == source.tenant_id, Alert.case_id == source.id).values(case_id=target.id)
    )
    target.alert_count += source.alert_count
    target.first_seen = min(target.first_seen, source.first_seen)
    target.last_seen = max(target.last_seen, source.last_seen)
    if Severity(source.severity).rank > Severity(target.severity).rank:
        target.severity = source.severity
    target.techniques = sorted(set(target.techniques or []) | set(source.techniques or []))
    observables = session.scalars(select(CaseObservable).where(CaseObservable.case_id == source.id)).all()
    if observables:
        insert = insert_for(session)
        session.execute(insert(CaseObservable).values([
            {"case_id": target.id, "tenant_id": o.tenant_id, "kind": o.kind, "value": o.value, "tlp": o.tlp,
             "source": o.source, "created_at": o.created_at} for o in observables
        ]).on_conflict_do_nothing(index_elements=["case_id", "kind", "value"]))
    previous = source.status
    source.status = CaseStatus.CLOSED.value
    source.resolution = Resolution.DUPLICATE.value
    source.merged_into_id = target.id
    source.closed_at = source.updated_at = utcnow()
    change_status(source, CaseStatus(previous), CaseStatus.CLOSED, source.closed_at)
    refresh_case(session=session, case=source)
    record_event(session=session, case_id=source.id, actor=actor, action=CaseAction.MERGED_INTO,
                 detail={"into": target.id, "alerts": getattr(moved, "rowcount", None)})
    record_event(session=session, case_id=source.id, actor=actor, action=CaseAction.STATUS_CHANGED,
                 detail={"from": previous, "to": CaseStatus.CLOSED.value, "resolution": Resolution.DUPLICATE.value})


def bulk_change(*, session: Session, request: BulkIn, scope: Scope, actor: str) -> list[BulkResult]:
    """One action on many cases, each case in its own transaction: one that fails is reported, not fatal."""
    if request.action is BulkAction.MERGE:
        assert request.into is not None  # checked by BulkIn
        try:
            target = merge_cases(session=session, target_id=request.into, source_ids=request.case_ids, scope=scope,
                                 actor=actor)
        except CaseApiError as exc:
            return [BulkResult(case_id=case_id, ok=False, detail=exc.message) for case_id in request.case_ids]
        return [BulkResult(case_id=case_id, ok=True,
                           status=CaseStatus(target.status) if case_id == target.id else CaseStatus.CLOSED)
                for case_id in request.case_ids]
    patch = (
        CasePatch(assignee=request.assignee) if request.action is BulkAction.ASSIGN
        else CasePatch(status=CaseStatus.CLOSED, resolution=request.resolution)
    )
    results = []
    for case_id in request.case_ids:
        try:
            case = update_case(session=session, case_id=case_id, scope=scope, patch=patch, actor=actor)
            if request.comment:
                add_comment(session=session, case_id=case_id, scope=scope, body=request.comment, actor=actor)
            results.append(BulkResult(case_id=case_id, ok=True, status=CaseStatus(case.status)))
        except CaseApiError as exc:
            session.rollback()
            results.append(BulkResult(case_id=case_id, ok=False, detail=exc.message))
    return results
