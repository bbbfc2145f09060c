"""Case queries and changes. Every function reading a case takes the caller's tenant scope."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, exists, literal, or_, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from case_api.alerts.models import Alert
from case_api.audit.service import record
from case_api.auth.models import Role, User
from case_api.auth.roles import CASE_WORKERS
from case_api.cases.enrich import enrich_case
from case_api.cases.models import (
    ALLOWED_TRANSITIONS,
    CASE_IS_OPEN,
    FINISHED_STATUSES,
    QUEUE_ORDER,
    Case,
    CaseAction,
    CaseEvent,
    CaseOut,
    CasePatch,
    CaseStatus,
    Severity,
    priority,
)
from case_api.db import utcnow
from case_api.errors import (
    CaseApiError,
    ConflictError,
    InvalidRequestError,
    InvalidTransitionError,
    NotFoundError,
    PreconditionFailedError,
)
from case_api.scope import scoped
from case_api.sla.clocks import acknowledge, change_status, refresh_due_times
from case_api.sla.models import SlaContract, TenantContract
from case_api.sla.service import (
    contract_of,
    criticality_and_contracts,
    refresh_case,
    remember_contract,
    with_clocks,
)

_FINISHED = [s.value for s in FINISHED_STATUSES]



def record_event(*, session: Session, case_id: int, actor: str, action: CaseAction, detail: dict[str, Any]) -> None:
    """Append one line to the case's audit trail (never updated or deleted), and to the audit log."""
    session.add(CaseEvent(case_id=case_id, actor=actor, action=action.value, detail=detail))
    case = session.get(Case, case_id)
    record(session, actor=actor, action=f"case.{action.value}", target_type="case", target_id=case_id,
           tenant_id=case.tenant_id if case is not None else None, detail=detail)


def create_case(
    *,
    session: Session,
    tenant_id: str,
    group_key: str,
    title: str,
    seen_at: datetime,
    actor: str,
    reason: dict[str, Any],
) -> Case:
    """A new open case of ``tenant_id``; ``reason`` (why it opened) goes into its ``created`` audit line.

    Callers hold the tenant's grouping lock (``incidents.service.lock_tenant``), so two batches never
    open twin cases.
    """
    now = utcnow()
    case = Case(
        tenant_id=tenant_id,
        title=title[:512],
        status=CaseStatus.NEW.value,
        severity=Severity.LOW.value,
        group_key=group_key,
        alert_count=0,
        first_seen=seen_at,
        last_seen=seen_at,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    record_event(
        session=session,
        case_id=case.id,
        actor=actor,
        action=CaseAction.CREATED,
        detail={"group_key": group_key, "title": title[:512], **reason},
    )
    return case


def add_alert_to_case(*, session: Session, case: Case, alert: Alert, actor: str) -> None:
    """Count ``alert`` into ``case``: alert count, first/last event time and maximum severity.

    An alert more severe than the case so far also gives the case its title: the queue should name
    the worst thing in a case (a stopped trail), not whatever noise happened to arrive first.
    """
    alert_severity = Severity.from_sigma_level(alert.rule_level)
    previous = Severity(case.severity)
    severity = alert_severity
    if case.alert_count > 0:
        severity = max(alert_severity, previous, key=lambda s: s.rank)
        if alert_severity.rank > previous.rank:
            case.title = f"{alert.rule_title} ({case.group_key})"
    case.severity = severity.value
    case.alert_count += 1
    case.first_seen = min(case.first_seen, alert.timestamp)
    case.last_seen = max(case.last_seen, alert.last_seen)
    case.updated_at = utcnow()
    alert.case_id = case.id
    detail: dict[str, Any] = {
        "alert_id": alert.id,
        "rule_id": alert.rule_id,
        "rule_level": alert.rule_level,
    }
    if case.alert_count > 1 and case.severity != previous.value:
        detail["severity"] = {"from": previous.value, "to": case.severity}
    if case.alert_count == 1 or case.severity != previous.value:  # the targets follow the severity
        refresh_case(session=session, case=case)
    record_event(session=session, case_id=case.id, actor=actor, action=CaseAction.ALERT_ADDED, detail=detail)
    enrich_case(session=session, case=case, alert=alert)


def queue_query(
    *, scope: Collection[str] | None, tenant_id: str | None = None, status: CaseStatus | None = None,
    open_only: bool = False, filters: QueueFilter | None = None,
) -> Select[Case]:
    """The case queue's query: the next SLA due time first, then most severe, then oldest activity.

    Cases whose clocks are all stopped or paused (awaiting the member) have no due time and come after the others.
    The open queue is read off its indexes (``ix_cases_open_queue*``), the filters applied while walking it.
    """
    query = scoped(select(Case), Case.tenant_id, scope=scope, tenant_id=tenant_id)
    if status is not None:
        query = query.where(Case.status == status.value)
    if open_only:
        query = query.where(CASE_IS_OPEN)
    if filters is not None:
        query = filters.apply(query)
    return query.order_by(*QUEUE_ORDER)


@dataclass(frozen=True)
class QueueFilter:
    """The console's further queue filters: severity, assignee (``unassigned``: none) and SLA state.

    SLA states read the stored next due time (``sla_due_at``) against ``now``: ``overdue`` (past it),
    ``due_soon`` (within ``soon``), ``on_track`` (later), ``no_clock`` (every clock stopped or paused).
    """

    severity: Severity | None = None
    assignee: str | None = None
    unassigned: bool = False
    sla_state: str | None = None
    now: datetime | None = None
    soon: timedelta = timedelta(hours=1)

    SLA_STATES = ("overdue", "due_soon", "on_track", "no_clock")

    def apply(self, query: Select[Case]) -> Select[Case]:
        if self.severity is not None:
            query = query.where(Case.severity == self.severity.value)
        if self.unassigned:
            query = query.where(Case.assignee.is_(None))
        elif self.assignee:
            query = query.where(Case.assignee == self.assignee)
        now = self.now or utcnow()
        if self.sla_state == "overdue":
            query = query.where(Case.sla_due_at < now)
        elif self.sla_state == "due_soon":
            query = query.where(Case.sla_due_at >= now, Case.sla_due_at < now + self.soon)
        elif self.sla_state == "on_track":
            query = query.where(Case.sla_due_at >= now + self.soon)
        elif self.sla_state == "no_clock":
            query = query.where(Case.sla_due_at.is_(None))
        return query


def case_outs(*, session: Session, cases: Sequence[Case]) -> list[CaseOut]:
    """Cases as the API shows them, with their priority from the tenant's asset criticality and their SLA clocks."""
    criticality = criticality_and_contracts(session=session, tenant_ids={case.tenant_id for case in cases})
    outs = []
    for case in cases:
        out = CaseOut.model_validate(case)
        # Set in place rather than model_copy(update=...): a page of 50 cases paid for 100 copies.
        out.priority = priority(Severity(case.severity), Severity(criticality.get(case.tenant_id, "medium")))
        outs.append(out)
    return with_clocks(session=session, cases=cases, outs=outs)


def case_out(*, session: Session, case: Case) -> CaseOut:
    return case_outs(session=session, cases=[case])[0]


# The case detail's reads, built once: a statement made per request costs its construction and its cache key
# (SQLAlchemy memoises the key on the statement object), more than the database takes to answer it.
_CASE = select(Case).where(Case.id == bindparam("case_id"))
_ALERT_PAGE = (select(Alert).where(Alert.case_id == bindparam("case_id"), Alert.tenant_id == bindparam("tenant_id"))
               .order_by(Alert.timestamp, Alert.id).limit(bindparam("limit")).offset(bindparam("offset")))
_EVENT_PAGE = (select(CaseEvent).where(CaseEvent.case_id == bindparam("case_id")).order_by(CaseEvent.id)
               .limit(bindparam("limit")).offset(bindparam("offset")))


def get_case(*, session: Session, case_id: int, scope: Collection[str] | None, for_update: bool = False) -> Case:
    """The case, if it exists in a tenant the caller may see.

    A case of another tenant is reported as not found, so its existence is not disclosed.
    """
    if scope is None and not for_update:
        found = session.scalars(_CASE, {"case_id": case_id}).first()
        if found is None:
            raise NotFoundError(f"case {case_id} not found")
        return found
    query = scoped(select(Case).where(Case.id == case_id), Case.tenant_id, scope=scope)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    case = session.scalars(query).first()
    if case is None:
        raise NotFoundError(f"case {case_id} not found")
    return case


def case_alerts(*, session: Session, case: Case, limit: int = 100, offset: int = 0) -> list[Alert]:
    """A page of the case's alerts, oldest first (the case was found in the caller's scope)."""
    return list(session.scalars(_ALERT_PAGE, {"case_id": case.id, "tenant_id": case.tenant_id, "limit": limit,
                                              "offset": offset}))


def case_events(*, session: Session, case: Case, limit: int = 100, offset: int = 0) -> list[CaseEvent]:
    """A page of the case's audit trail, oldest first."""
    return list(session.scalars(_EVENT_PAGE, {"case_id": case.id, "limit": limit, "offset": offset}))


def check_transition(current: CaseStatus, target: CaseStatus) -> None:
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED_TRANSITIONS[current])) or "none"
        raise InvalidTransitionError(
            f"a case cannot go from {current.value!r} to {target.value!r}; allowed from {current.value!r}: {allowed}"
        )


#: Attempts at a change that lost a race without If-Match (re-read, re-checked, applied again).
CHANGE_ATTEMPTS = 20


def update_case(
    *,
    session: Session,
    case_id: int,
    scope: Collection[str] | None,
    patch: CasePatch,
    actor: str,
    if_match: int | None = None,
) -> Case:
    """Apply a status and/or assignee change, writing one audit event per change, atomically.

    The change is checked against the case as read and written only if the case still has the
    version read (see ``Case.version``). With ``if_match`` the caller names the version it saw: any
    other is :class:`PreconditionFailedError` (412), before or during the write. Without it, a
    change that lost a race is re-read and checked again, so it applies to the newest state (or is
    refused by the workflow); the audit trail therefore replays to the stored status.
    """
    assignee = patch.assignee if "assignee" in patch.model_fields_set else None
    for attempt in range(CHANGE_ATTEMPTS):
        try:
            case, assignee_known = _lock_case(session=session, case_id=case_id, scope=scope, assignee=assignee)
        except DBAPIError as error:
            # The first statement on a connection the pool hands out unpinged (the write engine's) found it dead,
            # say the server restarted: nothing was written, so the change is tried once more on a new one.
            session.rollback()
            if attempt or not error.connection_invalidated:
                raise
            continue
        if if_match is not None and case.version != if_match:
            session.rollback()
            raise PreconditionFailedError(
                f"case {case_id} is at version {case.version}, not {if_match}: read it again and redo the change"
            )
        try:
            _apply_patch(session=session, case=case, patch=patch, actor=actor, assignee_known=assignee_known)
            session.commit()
            return case
        except StaleDataError:
            session.rollback()
            if if_match is not None:
                raise PreconditionFailedError(
                    f"case {case_id} changed while this change was written: read it again and redo the change"
                ) from None
        except IntegrityError as exc:  # another open case appeared for the group meanwhile
            session.rollback()
            raise ConflictError(f"case {case_id} cannot be reopened: its group already has an open case") from exc
        except CaseApiError:
            session.rollback()
            raise
    raise ConflictError(f"case {case_id} is changing too often to apply this change now: try again")


def _lock_case(*, session: Session, case_id: int, scope: Collection[str] | None,
               assignee: str | None) -> tuple[Case, bool]:
    """The case, locked for the change (PostgreSQL's row lock; SQLite's versioned UPDATE stands in), with its tenant's
    contract remembered in the session for the due times, and whether ``assignee`` may be assigned it: one statement.

    A case of another tenant is reported as not found, so its existence is not disclosed.
    """
    known = ASSIGNABLE if assignee is not None else literal(False)
    query = scoped(select(Case, TenantContract.contract, known).outerjoin(
        TenantContract, TenantContract.tenant_id == Case.tenant_id).where(Case.id == case_id),
        Case.tenant_id, scope=scope)
    query = query.with_for_update(of=Case).execution_options(populate_existing=True)
    row = session.execute(query, {"assignee": assignee} if assignee is not None else {}).first()
    if row is None:
        raise NotFoundError(f"case {case_id} not found")
    case, contract, assignee_known = row
    remember_contract(session=session, tenant_id=case.tenant_id, document=contract)
    return case, bool(assignee_known)


def _apply_patch(*, session: Session, case: Case, patch: CasePatch, actor: str, assignee_known: bool) -> None:
    with session.no_autoflush:  # remembered by _lock_case: no statement
        contract = contract_of(session=session, tenant_id=case.tenant_id)
    changes = apply_patch(case, patch, now=utcnow(), assignee_known=assignee_known, contract=contract,
                          ensure_reopenable=lambda: _ensure_group_has_no_open_case(session=session, case=case))
    for action, detail in changes:
        record_event(session=session, case_id=case.id, actor=actor, action=action, detail=detail)
    if changes:
        session.flush()  # the versioned UPDATE: raises StaleDataError if the case changed since it was read


def apply_patch(case: Case, patch: CasePatch, *, now: datetime, assignee_known: bool, contract: SlaContract,
                ensure_reopenable: Callable[[], None]) -> list[tuple[CaseAction, dict[str, Any]]]:
    """Change ``case``'s attributes as ``patch`` asks (the workflow checked, the SLA clocks stopped, paused or resumed
    and the due times recomputed under ``contract``, ``updated_at`` set): the audit lines the change makes, in order
    (none when nothing changes). ``case`` is a case or any object with its columns as attributes (the PostgreSQL path
    changes a row's copy: cases/patch.py); ``ensure_reopenable`` raises when the case may not be reopened."""
    changes: list[tuple[CaseAction, dict[str, Any]]] = []
    if patch.status is not None and patch.status.value != case.status:
        current = CaseStatus(case.status)
        check_transition(current, patch.status)
        if not current.is_open and patch.status.is_open:
            ensure_reopenable()
        case.status = patch.status.value
        detail: dict[str, Any] = {"from": current.value, "to": patch.status.value}
        if patch.resolution is not None:
            detail["resolution"] = patch.resolution.value
            case.resolution = patch.resolution.value
        elif patch.status.is_open:
            case.resolution = None
        case.closed_at = now if patch.status is CaseStatus.CLOSED else None
        change_status(case, current, patch.status, now)
        changes.append((CaseAction.STATUS_CHANGED, detail))
    if "assignee" in patch.model_fields_set and patch.assignee != case.assignee:
        if patch.assignee is not None and not assignee_known:
            raise _unknown_assignee(patch.assignee)
        changes.append((CaseAction.ASSIGNED, {"from": case.assignee, "to": patch.assignee}))
        case.assignee = patch.assignee
    if patch.severity is not None and patch.severity.value != case.severity:
        changes.append((CaseAction.SEVERITY_CHANGED, {"from": case.severity, "to": patch.severity.value}))
        case.severity = patch.severity.value
    if changes:
        acknowledge(case, now)
        refresh_due_times(case, contract)
        case.updated_at = now
    return changes


def known_assignees(*, session: Session, tenant_ids: Collection[str] | None) -> list[str]:
    """Ids of the enabled users who may be assigned cases: the city SOC roles and, for ``tenant_ids`` (``None``:
    every member's), the members' responders."""
    city = [role.value for role in CASE_WORKERS if not role.is_tenant_bound]
    responders = User.role == Role.TENANT_RESPONDER.value
    if tenant_ids is not None:
        responders = responders & User.tenant_id.in_(sorted(tenant_ids))
    query = select(User.id).where(User.disabled_at.is_(None), or_(User.role.in_(city), responders))
    return list(session.scalars(query.order_by(User.id).limit(1000)))


#: Whether the user ``:assignee`` may be assigned the case beside it in the statement: an enabled user of a city SOC
#: role, or a responder of the case's tenant.
ASSIGNABLE = exists().where(
    User.id == bindparam("assignee"),
    User.disabled_at.is_(None),
    or_(User.role.in_([role.value for role in CASE_WORKERS if not role.is_tenant_bound]),
        (User.role == Role.TENANT_RESPONDER.value) & (User.tenant_id == Case.tenant_id)),
)


def _unknown_assignee(name: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"unknown assignee {name!r}: assign a user who may work this case (their user id, see GET /users)"
    )


#: Another open case of the case's group (``:tenant_id``, ``:group_key``, other than ``:case_id``), if there is one.
OPEN_SIBLING = select(Case.id).where(
    Case.tenant_id == bindparam("tenant_id"), Case.group_key == bindparam("group_key"), Case.status.not_in(_FINISHED),
    Case.id != bindparam("case_id"),
).limit(1)


def _ensure_group_has_no_open_case(*, session: Session, case: Case) -> None:
    other = session.scalars(OPEN_SIBLING, {"tenant_id": case.tenant_id, "group_key": case.group_key,
                                           "case_id": case.id}).first()
    if other is not None:
        raise reopen_conflict(case.id, other, case.group_key)


def reopen_conflict(case_id: int, other: int, group_key: str) -> ConflictError:
    return ConflictError(
        f"case {case_id} cannot be reopened: case {other} is already open for {group_key!r}; work that case instead"
    )
