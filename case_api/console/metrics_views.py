"""The metrics page: MTTA/MTTR per member and severity (the API's ``GET /metrics``) and alerts received per
dataset per day, as server-drawn charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from case_api.alerts.service import alert_volume
from case_api.console.charts import BarChart, bar_chart
from case_api.console.web import ConsoleUserDep, Timer, render, scope_of
from case_api.db import SessionDep, utcnow
from case_api.sla.metrics import case_metrics
from case_api.tenants.service import list_tenants

router = APIRouter()

PERIODS = (7, 30, 90, 366)


@router.get("/metrics", include_in_schema=False)
def metrics_page(request: Request, session: SessionDep, user: ConsoleUserDep,
                 tenant: Annotated[str | None, Query(max_length=63)] = None,
                 days: Annotated[int, Query(ge=1, le=366)] = 30) -> HTMLResponse:
    timer = Timer(request)
    scope = scope_of(user)
    now = utcnow()
    since = now - timedelta(days=days)
    metrics = case_metrics(session=session, scope=scope, since=since, until=now, now=now, tenant_id=tenant or None)
    volume = alert_volume(session=session, scope=scope, since=since, until=now, tenant_id=tenant or None)
    timer.lap("query")
    return render(request, "metrics.html", {
        "user": user, "metrics": metrics, "charts": volume_charts(volume, since.date(), days), "days": days,
        "periods": PERIODS, "tenant": tenant or "", "tenants": list_tenants(session=session, scope=scope),
    }, timer=timer)


def volume_charts(volume: list[tuple[str, str, int]], first_day: date, days: int) -> list[BarChart]:
    """One chart per dataset: alerts per day over the period, days without alerts drawn as zero."""
    labels = [(first_day + timedelta(days=offset)).isoformat() for offset in range(days + 1)]
    by_dataset: dict[str, dict[str, int]] = defaultdict(dict)
    for dataset, day, count in volume:
        by_dataset[dataset][day] = count
    return [bar_chart(f"Alerts per day, {dataset}", [counts.get(day, 0) for day in labels], labels)
            for dataset, counts in sorted(by_dataset.items())]
