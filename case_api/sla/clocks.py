"""A case's SLA clocks: what stops them, what pauses them, and their due times.

Every clock starts when the case opens (``created_at``) and runs on the tenant contract's calendar:

- **acknowledge** stops at the first change an analyst makes to the case's status, assignee or severity
  (``acknowledged_at``): someone owns it (ServiceNow's response SLA stops on assignment or a state change);
- **triage** stops when the case leaves ``new`` (``triaged_at``): it was judged, worked on, sent to the
  member or dismissed;
- **resolve** stops when the case is resolved or closed (``resolved_at``); reopening a resolved case
  clears it and the clock runs on, the time spent resolved not counting.

While a case is ``awaiting_member`` its running clocks are paused (Jira Service Management's "waiting for
customer"): pauses are kept as closed intervals (``sla_pauses``) plus the open one (``sla_paused_since``),
and are cut out of the calendar's running time. A clock's due time is the moment its target of running time
is used up; it is breached when it stops after that, or is still running past it.

The due times are stored on the case (``*_due_at``; a running clock that is paused has none, since its
due time moves while it waits) and ``sla_due_at`` is the earliest due time of a running, unpaused clock:
the queue's order. They are recomputed whenever what they depend on changes (status, severity, the
contract); reads compute the clocks again at the time of reading (:func:`read_clocks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from case_api.cases.models import Case, CaseSlaOut, CaseStatus, Severity, SlaClockOut
from case_api.sla.calendar import Interval
from case_api.sla.models import Clock, SlaContract

_STOPPED_BY = {Clock.ACKNOWLEDGE: "acknowledged_at", Clock.TRIAGE: "triaged_at", Clock.RESOLVE: "resolved_at"}
_DUE_COLUMN = {Clock.ACKNOWLEDGE: "acknowledge_due_at", Clock.TRIAGE: "triage_due_at",
               Clock.RESOLVE: "resolve_due_at"}
#: The stored due times, the queue's order last.
DUE_COLUMNS = (*_DUE_COLUMN.values(), "sla_due_at")


def stopped_at(case: Case, clock: Clock) -> datetime | None:
    value: datetime | None = getattr(case, _STOPPED_BY[clock])
    return value


def pauses_of(case: Case) -> list[Interval]:
    """The case's closed pauses."""
    return [(datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in case.sla_pauses or []]


def _due(contract: SlaContract, case: Case, clock: Clock, pauses: Sequence[Interval]) -> datetime:
    stop = stopped_at(case, clock)
    relevant = pauses if stop is None else [(start, min(end, stop)) for start, end in pauses if start < stop]
    target = contract.target(Severity(case.severity), clock)
    return contract.calendar.calendar().add(case.created_at, target, relevant)


def due_times(case: Case, contract: SlaContract) -> dict[str, datetime | None]:
    """Each clock's stored due time and the queue's ``sla_due_at`` (see the module's docstring)."""
    pauses = pauses_of(case)
    values: dict[str, datetime | None] = {}
    earliest: datetime | None = None
    for clock in Clock:
        running = stopped_at(case, clock) is None
        due = None if running and case.sla_paused_since is not None else _due(contract, case, clock, pauses)
        values[_DUE_COLUMN[clock]] = due
        if running and due is not None and (earliest is None or due < earliest):
            earliest = due
    values["sla_due_at"] = earliest
    return values


def refresh_due_times(case: Case, contract: SlaContract) -> None:
    for column, value in due_times(case, contract).items():
        if getattr(case, column) != value:
            setattr(case, column, value)


def read_clocks(case: Case, contract: SlaContract, *, now: datetime, default: bool) -> CaseSlaOut:
    """The clocks as of ``now``; a paused clock's due time is the one it has if the case resumed now."""
    pauses = pauses_of(case)
    if case.sla_paused_since is not None:
        pauses.append((case.sla_paused_since, max(now, case.sla_paused_since)))
    clocks: dict[str, SlaClockOut] = {}
    for clock in Clock:
        stop = stopped_at(case, clock)
        due = _due(contract, case, clock, pauses)
        target = contract.target(Severity(case.severity), clock)
        clocks[clock.value] = SlaClockOut(
            target_seconds=int(target.total_seconds()),
            due_at=due,
            done_at=stop,
            breached=(stop or now) > due,
        )
    return CaseSlaOut(
        contract="default" if default else "tenant",
        calendar=contract.calendar.describe(),
        paused=case.sla_paused_since is not None,
        **clocks,
    )


def acknowledge(case: Case, at: datetime) -> None:
    """An analyst changed the case: its acknowledge clock stops, if it still ran."""
    if case.acknowledged_at is None:
        case.acknowledged_at = at


def change_status(case: Case, previous: CaseStatus, target: CaseStatus, at: datetime) -> None:
    """Stop, pause and resume the clocks for a status change (the caller then refreshes the due times)."""
    acknowledge(case, at)
    if previous is CaseStatus.NEW and case.triaged_at is None:
        case.triaged_at = at
    if previous is CaseStatus.AWAITING_MEMBER and case.sla_paused_since is not None:
        _add_pause(case, case.sla_paused_since, at)
        case.sla_paused_since = None
    if target is CaseStatus.AWAITING_MEMBER:
        case.sla_paused_since = at
    if previous.is_open and not target.is_open:
        case.resolved_at = case.resolved_at or at
    elif not previous.is_open and target.is_open and case.resolved_at is not None:
        _add_pause(case, case.resolved_at, at)  # reopened: the time it spent resolved does not count
        case.resolved_at = None


def _add_pause(case: Case, start: datetime, end: datetime) -> None:
    if end > start:
        case.sla_pauses = [*(case.sla_pauses or []), [start.isoformat(), end.isoformat()]]
