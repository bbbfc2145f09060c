"""The queue read (``GET /cases``, cases/queue.py) gives exactly what ``list[CaseOut]`` serialises for the same
cases at the same time: open, acknowledged, overdue, paused, resolved and closed cases, a member's own business-hours
contract set after its cases opened, and cases without stored due times; in each caller's scope. The case
detail, serialised by its endpoints, is what its response model gives."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy import update

from case_api.alerts.models import AlertOut
from case_api.auth.models import Role
from case_api.campaigns.service import case_campaigns
from case_api.cases.models import Case, CaseEventOut, CaseOut
from case_api.cases.queue import queue_json, queue_page
from case_api.cases.service import case_alerts, case_events, case_out, case_outs, get_case, queue_query
from case_api.cases.views import CaseDetailOut
from case_api.db import utcnow
from case_api.sla.clocks import read_clocks
from case_api.sla.service import contracts_of, refresh_case

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"
RS = "riverside-school"
BUSINESS = {"kind": "business_hours", "timezone": "Europe/London",
            "hours": {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}, "holidays": ["2026-12-25"]}
_PAGE = TypeAdapter(list[CaseOut])


def _patch(soc: SocApi, case_id: int, **body: Any) -> None:
    response = soc.client.patch(f"/api/v1/cases/{case_id}", json=body, headers=soc.analyst)
    assert response.status_code == 200, response.text


def _expected(app: FastAPI, scope: Collection[str] | None, *, limit: int = 100, offset: int = 0,
              **query: Any) -> tuple[bytes, bytes]:
    """The queue page as the models give it (the queue's query read as ORM cases, one CaseOut each, clocks computed)
    and as queue_page does, both as of the same moment."""
    now = utcnow()
    with app.state.session_factory() as session:
        cases = list(session.scalars(queue_query(scope=scope, **query).limit(limit).offset(offset)))
        outs = case_outs(session=session, cases=cases)
        contracts = contracts_of(session=session, tenant_ids={case.tenant_id for case in cases})
        for case, out in zip(cases, outs, strict=True):
            contract, default = contracts[case.tenant_id]
            out.sla = read_clocks(case, contract, now=now, default=default)
        models = _PAGE.dump_json(outs)
    with app.state.session_factory() as session:
        page = queue_json(queue_page(session=session, scope=scope, limit=limit, offset=offset, now=now, **query))
    return models, page


def test_queue_read_is_byte_for_byte_the_models_page(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    soc.headers(Role.SOC_ANALYST, name="ana")
    ids = []
    for n, (tenant, level) in enumerate([(NG, "critical"), (NG, "high"), (NG, "medium"), (RS, "critical"),
                                         (RS, "high"), (RS, "medium"), (NG, "critical"), (RS, "high")]):
        ids += soc.ingest(make_alert(tenant, user=f"user{n}", level=level))["cases"]
    assert len(ids) == 8
    _patch(soc, ids[0], assignee="ana")  # acknowledged
    _patch(soc, ids[1], status="in_progress")  # acknowledged and triaged
    _patch(soc, ids[2], status="awaiting_member")  # paused
    _patch(soc, ids[3], status="resolved", resolution="true_positive")
    _patch(soc, ids[4], status="closed", resolution="benign")
    _patch(soc, ids[5], status="awaiting_member")
    _patch(soc, ids[5], status="in_progress")  # a closed pause
    with app.state.session_factory() as session:  # opened 2 h ago: overdue clocks, breached
        aged = session.get(Case, ids[6])
        assert aged is not None
        aged.created_at -= timedelta(hours=2)
        refresh_case(session=session, case=aged)
        session.execute(update(Case).where(Case.id == ids[7]).values(  # no stored due times
            acknowledge_due_at=None, triage_due_at=None, resolve_due_at=None, sla_due_at=None))
        session.commit()
    # The member's own contract after its cases opened: open cases' due times follow it, closed ones' are computed.
    response = soc.client.put(f"/api/v1/tenants/{RS}/contract", json={"calendar": BUSINESS,
                              "targets": soc.client.get(f"/api/v1/tenants/{NG}/contract",
                                                        headers=soc.admin).json()["contract"]["targets"]},
                              headers=soc.admin)
    assert response.status_code == 200, response.text

    pages: list[tuple[Collection[str] | None, dict[str, Any]]] = [
        (None, {}), (None, {"open_only": True}), ({NG}, {}), ({RS}, {"limit": 2, "offset": 1}), (set(), {}),
        (None, {"tenant_id": RS})]
    for scope, query in pages:
        models, page = _expected(app, scope, **query)
        assert page == models, (scope, query)
    # Every state above is in the page compared.
    every = _expected(app, None)[1]
    assert every.count(b'"paused":true') == 1 and every.count(b'"breached":true') >= 1
    assert b'"status":"closed"' in every and b'"calendar":"business hours (Europe/London)"' in every

    # Over HTTP: the same cases in the same order, with a tenant's responder seeing only its own.
    listed = soc.client.get("/api/v1/cases", headers=soc.analyst)
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert [case["id"] for case in listed.json()] == [case.id for case in _PAGE.validate_json(every)]
    responder = soc.headers(Role.TENANT_RESPONDER, tenant=RS)
    own = soc.client.get("/api/v1/cases", headers=responder).json()
    assert own and {case["tenant_id"] for case in own} == {RS}


def test_case_detail_is_byte_for_byte_the_models_answer(soc: SocApi, make_alert: MakeAlert, app: FastAPI) -> None:
    """``GET`` and ``PATCH /cases/{id}`` serialise their detail themselves: the same bytes as ``CaseDetailOut``
    validated and dumped by alias (what FastAPI's response model gave), and the case's ETag."""
    soc.add_tenant(NG)
    soc.headers(Role.SOC_ANALYST, name="ana")
    [case_id] = soc.ingest(make_alert(NG, user="pat", level="high"))["cases"]
    soc.ingest(make_alert(NG, user="pat", level="critical"))
    changed = soc.client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "ana"}, headers=soc.analyst)
    read = soc.client.get(f"/api/v1/cases/{case_id}", params={"alerts_limit": 1, "events_offset": 1},
                          headers=soc.analyst)
    for response, alerts, events in ((changed, (100, 0), (100, 0)), (read, (1, 0), (100, 1))):
        assert response.status_code == 200, response.text
        with app.state.session_factory() as session:
            case = get_case(session=session, case_id=case_id, scope=None)
            model = CaseDetailOut.model_validate({
                **case_out(session=session, case=case).model_dump(),
                "alerts": [AlertOut.model_validate(a) for a in case_alerts(session=session, case=case,
                                                                            limit=alerts[0], offset=alerts[1])],
                "events": [CaseEventOut.model_validate(e) for e in case_events(session=session, case=case,
                                                                                limit=events[0], offset=events[1])],
                "campaigns": case_campaigns(session=session, case_id=case_id, scope=None),
            })
        assert response.content == TypeAdapter(CaseDetailOut).dump_json(model, by_alias=True)
        assert response.headers["etag"] == f'"{model.version}"' and response.headers["content-type"] == (
            "application/json")
    assert b'"@timestamp"' in read.content and len(read.json()["alerts"]) == 1
