"""SOC metrics per member and severity: mean and percentile time to acknowledge, triage and resolve (MTTA,
MTTT, MTTR) from the cases' status timestamps, with how many clocks breached their SLA.

The population is the cases opened in a period (``created_at`` in ``[since, until)``), as the caller's
tenant scope lets it see them, without the cases merged into another (their alerts count in the case they
joined). A duration is wall-clock time from the case's opening to the clock's stop, what the member lived
through; whether it met the contract is the breach count, measured on the contract's calendar with pauses.
Percentiles are nearest-rank (the smallest value with at least p% of the values at or below it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from case_api.cases.models import Case, Severity
from case_api.scope import scoped
from case_api.sla.clocks import read_clocks
from case_api.sla.models import Clock
from case_api.sla.service import contracts_of

PERCENTILES = (50, 90, 95)


class MeasureOut(BaseModel):
    """One clock over a group of cases."""

    count: int = Field(description="Cases whose clock stopped")
    running: int = Field(description="Cases whose clock still runs")
    mean_seconds: float | None = Field(description="Mean time from opening to the stop (MTTA, MTTT or MTTR)")
    p50_seconds: float | None
    p90_seconds: float | None
    p95_seconds: float | None
    breached: int = Field(description="Clocks that stopped after their due time, or still run past it")


class MetricsRow(BaseModel):
    tenant_id: str | None = Field(description="None in the overall rows (every member in the caller's scope)")
    severity: Severity
    cases: int
    acknowledge: MeasureOut
    triage: MeasureOut
    resolve: MeasureOut


class MetricsOut(BaseModel):
    since: datetime
    until: datetime
    rows: list[MetricsRow] = Field(description="Per member and severity, most severe first")
    overall: list[MetricsRow] = Field(description="Per severity over every member in the caller's scope")


def percentile(ordered: Sequence[float], p: int) -> float:
    """Nearest-rank percentile of values sorted ascending (not empty)."""
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def measure(durations: list[float], running: int, breached: int) -> MeasureOut:
    ordered = sorted(durations)
    figures = {f"p{p}_seconds": percentile(ordered, p) if ordered else None for p in PERCENTILES}
    return MeasureOut(count=len(ordered), running=running, breached=breached,
                      mean_seconds=sum(ordered) / len(ordered) if ordered else None, **figures)


class _Group:
    def __init__(self) -> None:
        self.cases = 0
        self.durations: dict[Clock, list[float]] = {clock: [] for clock in Clock}
        self.running = dict.fromkeys(Clock, 0)
        self.breached = dict.fromkeys(Clock, 0)

    def row(self, tenant_id: str | None, severity: Severity) -> MetricsRow:
        measures = {clock.value: measure(self.durations[clock], self.running[clock], self.breached[clock])
                    for clock in Clock}
        return MetricsRow(tenant_id=tenant_id, severity=severity, cases=self.cases, **measures)


def case_metrics(
    *, session: Session, scope: Collection[str] | None, since: datetime, until: datetime, now: datetime,
    tenant_id: str | None = None,
) -> MetricsOut:
    query = scoped(select(Case), Case.tenant_id, scope=scope, tenant_id=tenant_id).where(
        Case.created_at >= since, Case.created_at < until, Case.merged_into_id.is_(None)
    )
    cases = list(session.scalars(query.order_by(Case.id)))
    contracts = contracts_of(session=session, tenant_ids={case.tenant_id for case in cases})
    groups: dict[tuple[str, Severity], _Group] = defaultdict(_Group)
    overall: dict[Severity, _Group] = defaultdict(_Group)
    for case in cases:
        severity = Severity(case.severity)
        contract, default = contracts[case.tenant_id]
        clocks = read_clocks(case, contract, now=now, default=default)
        for group in (groups[case.tenant_id, severity], overall[severity]):
            group.cases += 1
            for clock in Clock:
                reading = getattr(clocks, clock.value)
                if reading.done_at is None:
                    group.running[clock] += 1
                else:
                    group.durations[clock].append((reading.done_at - case.created_at) / timedelta(seconds=1))
                group.breached[clock] += reading.breached
    by_rank = sorted(groups, key=lambda key: (key[0], -key[1].rank))
    return MetricsOut(
        since=since,
        until=until,
        rows=[groups[key].row(key[0], key[1]) for key in by_rank],
        overall=[overall[severity].row(None, severity) for severity in sorted(overall, key=lambda s: -s.rank)],
    )
