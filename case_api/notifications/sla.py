"""SLA breaches noticed as time passes: the sweep the outbox drainer runs before each round.

A clock breaches when it is still running past its due time (`case_api.sla.clocks`), with no request to
notice it. The sweep looks for open, unpaused cases with a running clock whose stored due time has passed
and enqueues `case.sla_breached` for each such clock once (`service.notify_sla_breach`; the outbox's keys
make a repeat a no-op). The query itself leaves out what there is nothing to do for: clocks already announced
(a notification of that case and clock exists) and, when the SOC has no contacts of its own, members without
contacts. A desk with thousands of late cases, announced long ago or with nowhere to announce them, costs a
round one query that returns nothing, not a read of every late case. A clock that an analyst stops
after its due time but before a sweep saw it running (sweeps run every `SOC_NOTIFY_INTERVAL`) is shown as
breached on the case and counted in the metrics, and not notified: it is being worked.

Every `soc api` worker process runs a drainer, so on PostgreSQL a round's sweep first takes a transaction-level
advisory lock without waiting (`pg_try_advisory_xact_lock`): one worker sweeps, the others skip that round
rather than read the same cases again. Were two to sweep at once (SQLite has no such lock), the outbox's keys
still keep one notification per clock and destination.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from case_api.cases.models import FINISHED_STATUSES, Case
from case_api.notifications.delivery import Sweep
from case_api.notifications.models import Notification, NotificationEvent, TenantContact
from case_api.notifications.service import Destination, SocContacts, destinations, notify_sla_breach
from case_api.sla.models import Clock

#: Each clock's stored due time and the time that stops it.
CLOCK_COLUMNS = {
    Clock.ACKNOWLEDGE: (Case.acknowledge_due_at, Case.acknowledged_at),
    Clock.TRIAGE: (Case.triage_due_at, Case.triaged_at),
    Clock.RESOLVE: (Case.resolve_due_at, Case.resolved_at),
}


#: The advisory lock key of the SLA sweep (any constant the application uses for nothing else).
SWEEP_LOCK = 0x5C_5A_0001


def sweep_lock(session: Session) -> bool:
    """Whether this transaction may sweep: on PostgreSQL, whether it took the sweep's advisory lock (held until
    commit or rollback); elsewhere always."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(SWEEP_LOCK))))


def _announced(clock: Clock) -> ColumnElement[bool]:
    """Whether the case's ``clock`` was announced: an SLA notification with its key (``notify_sla_breach``'s
    ``case.sla_breached:<case>:<clock>:<destination>``) exists."""
    key = literal(f"{NotificationEvent.SLA_BREACHED.value}:") + cast(Case.id, String) + literal(f":{clock.value}:%")
    return exists().where(Notification.case_id == Case.id,
                          Notification.event == NotificationEvent.SLA_BREACHED.value,
                          Notification.dedup_key.like(key))


def sla_breach_sweep(soc: SocContacts) -> Sweep:
    """The sweep for the drainer (`OutboxDrainer(sweeps=[...])`)."""

    def sweep(session: Session, now: datetime) -> int:
        if not sweep_lock(session):
            return 0
        late_unannounced = or_(*(and_(due < now, stop.is_(None), ~_announced(clock))
                                 for clock, (due, stop) in CLOCK_COLUMNS.items()))
        query = select(Case).where(Case.status.not_in([s.value for s in FINISHED_STATUSES]),
                                   Case.sla_paused_since.is_(None), late_unannounced)
        if not soc.emails and not soc.webhook_url:  # only members' own contacts to send to
            query = query.where(Case.tenant_id.in_(select(TenantContact.tenant_id)))
        cases = list(session.scalars(query))
        if not cases:
            return 0
        announced = {
            (case_id, key.split(":")[2])
            for case_id, key in session.execute(
                select(Notification.case_id, Notification.dedup_key)
                .where(Notification.case_id.in_([case.id for case in cases]),
                       Notification.event == NotificationEvent.SLA_BREACHED.value))
        }
        # Each tenant's destinations once a round: a tenant with none (no contacts, no SOC contacts) has
        # nothing to enqueue, and its late cases, never announced, would otherwise be looked up again
        # case by case and clock by clock every round.
        to: dict[str, list[Destination]] = {}
        added = 0
        for case in cases:
            if case.tenant_id not in to:
                to[case.tenant_id] = destinations(session=session, tenant_id=case.tenant_id, soc=soc)
            if not to[case.tenant_id]:
                continue
            for clock, (due_column, stop_column) in CLOCK_COLUMNS.items():
                due: datetime | None = getattr(case, due_column.key)
                running = getattr(case, stop_column.key) is None
                if due is not None and due < now and running and (case.id, clock.value) not in announced:
                    added += notify_sla_breach(session=session, case=case, clock=clock.value, due_at=due, soc=soc,
                                               to=to[case.tenant_id])
        return added

    return sweep
