"""A member organisation's pages: its cases, its SLA figures, its sources with data health and dead letters,
and how to onboard a new source. A member's users see only their own organisation (another's page is 404);
city roles see any member's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from case_api.bounds import IdPath
from case_api.campaigns.service import campaigns_by_case
from case_api.cases.queue import queue_page
from case_api.console.charts import BarChart, bar_chart
from case_api.console.queue_views import QueueRow
from case_api.console.sessions import ConsoleUser
from case_api.console.web import ConsoleUserDep, Timer, render, scope_of
from case_api.db import SessionDep, utcnow
from case_api.errors import NotFoundError
from case_api.health.dependencies import get_dead_letter_store, get_health_store
from case_api.health.models import SourceHealthOut
from case_api.health.service import list_dead_letters, sources_health
from case_api.sla.metrics import case_metrics
from case_api.sla.service import get_contract
from case_api.sources.models import Source
from case_api.sources.service import get_source, list_sources
from case_api.tenants.models import Tenant
from case_api.tenants.service import list_tenants
from citysoc.onboarding import KINDS, OnboardingError, instructions
from citysoc.settings import Settings as IntakeSettings

router = APIRouter()

CASES_SHOWN = 20
DEAD_LETTERS_SHOWN = 10
SLA_PERIOD = timedelta(days=30)
TenantPath = Annotated[str, Path(max_length=63)]


@dataclass(frozen=True)
class SourceView:
    source: Source
    health: SourceHealthOut | None
    chart: BarChart | None


def _member(session: Session, user: ConsoleUser, tenant_id: str) -> Tenant:
    """The member, if the user's scope holds it; another member's (or a missing one) is not found."""
    found = [t for t in list_tenants(session=session, scope=scope_of(user)) if t.id == tenant_id]
    if not found:
        raise NotFoundError(f"member {tenant_id!r} not found")
    return found[0]


def _source_views(request: Request, sources: list[Source]) -> list[SourceView]:
    health = sources_health(store=get_health_store(request), sources=sources)
    minutes = [f"-{59 - n} min" if n < 59 else "now" for n in range(60)]
    views = []
    for source in sources:
        found = health.get(source.id)
        chart = (bar_chart(f"Events per minute, last hour, {source.name}", found.events_per_minute, minutes,
                           width=360, height=80) if found is not None else None)
        views.append(SourceView(source=source, health=found, chart=chart))
    return views


@router.get("/members/{tenant_id}", include_in_schema=False)
def member_page(request: Request, tenant_id: TenantPath, session: SessionDep, user: ConsoleUserDep) -> HTMLResponse:
    timer = Timer(request)
    scope = scope_of(user)
    member = _member(session, user, tenant_id)
    cases = queue_page(session=session, scope=scope, tenant_id=member.id, open_only=True, limit=CASES_SHOWN,
                       clocks=False)
    campaigns = campaigns_by_case(session=session, case_ids={case["id"] for case in cases}, scope=scope)
    rows = [QueueRow(case=case, campaigns=campaigns.get(case["id"], [])) for case in cases]
    now = utcnow()
    metrics = case_metrics(session=session, scope=scope, since=now - SLA_PERIOD, until=now, now=now,
                           tenant_id=member.id)
    sources = _source_views(request, list_sources(session=session, scope=scope, tenant_id=member.id))
    letters = list_dead_letters(store=get_dead_letter_store(request), scope=scope, tenant_id=member.id,
                                limit=DEAD_LETTERS_SHOWN)
    timer.lap("query")
    return render(request, "member.html", {
        "user": user, "member": member, "rows": rows, "more": len(cases) == CASES_SHOWN, "metrics": metrics,
        "contract": get_contract(session=session, tenant_id=member.id, scope=scope), "sources": sources,
        "letters": letters, "sla_days": SLA_PERIOD.days,
    }, timer=timer)


@router.get("/sources", include_in_schema=False)
def sources_page(request: Request, session: SessionDep, user: ConsoleUserDep) -> HTMLResponse:
    timer = Timer(request)
    sources = _source_views(request, list_sources(session=session, scope=scope_of(user)))
    timer.lap("query")
    return render(request, "sources.html", {"user": user, "sources": sources}, timer=timer)


@router.get("/sources/{source_id}", include_in_schema=False)
def source_page(request: Request, source_id: IdPath, session: SessionDep, user: ConsoleUserDep) -> HTMLResponse:
    timer = Timer(request)
    scope = scope_of(user)
    source = get_source(session=session, source_id=source_id, scope=scope)  # another member's: 404
    [view] = _source_views(request, [source])
    letters = list_dead_letters(store=get_dead_letter_store(request), scope=scope, tenant_id=source.tenant_id,
                                source=source.parser, limit=DEAD_LETTERS_SHOWN)
    timer.lap("query")
    return render(request, "source.html", {
        "user": user, "view": view, "letters": letters, "setup": _setup(source.kind, source.tenant_id, source.parser,
                                                                        bool(source.certificate_sha256)),
    }, timer=timer)


@router.get("/members/{tenant_id}/onboarding", include_in_schema=False)
def onboarding_page(request: Request, tenant_id: TenantPath, session: SessionDep, user: ConsoleUserDep,
                    kind: Annotated[str, Query(max_length=64)] = "syslog-tcp") -> HTMLResponse:
    member = _member(session, user, tenant_id)
    chosen = kind if kind in KINDS else KINDS[0]
    return render(request, "onboarding.html", {
        "user": user, "member": member, "kinds": KINDS, "kind": chosen,
        "setup": _setup(chosen, member.id, None, False),
    })


def _setup(kind: str, tenant_id: str, parser: str | None, client_certificate: bool) -> dict[str, Any]:
    """What the partner configures, from the intake's settings (``SOC_COLLECT_*``), as ``soc sources add`` prints
    it (``citysoc.onboarding``); a file kind is fed with ``soc ingest``."""
    intake = IntakeSettings()
    port = intake.collect_port(kind)
    if port is None:
        return {"text": f"soc ingest --tenant {tenant_id} --source {parser or kind} PATH...", "port": None}
    try:
        text = instructions(kind, host=intake.collect_host, port=port, token=None, ca_file=intake.collect_ca_file,
                            client_certificate=client_certificate)
    except OnboardingError as exc:
        text = str(exc)
    return {"text": text, "port": port, "host": intake.collect_host}
