"""Notifications: new high/critical cases and SLA breaches reach the member's contacts and the SOC by real SMTP
(aiosmtpd) and Standard Webhooks (verified by the reference library), through the outbox, with retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.orm import Session

from case_api.app import create_app
from case_api.auth.models import Role
from case_api.cases.models import Case
from case_api.notifications.delivery import OutboxDrainer
from case_api.notifications.flows import drain_in_background, outbox_drainer
from case_api.notifications.senders import Notifier, OutgoingMessage, new_webhook_secret
from case_api.notifications.service import notify_sla_breach
from case_api.settings import Settings
from tests.case_api.conftest import SocApi, build_alert, http_client
from tests.case_api.notify_peers import Mailbox, WebhookReceiver, free_port, smtp_server, webhook_receiver

NG, RS = "northgate-hospital", "riverside-school"
SOC_MAIL = "soc-duty@city.example"
SOC_SECRET = new_webhook_secret()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as peer:
        peer.secrets["/soc"] = SOC_SECRET
        yield peer


def notify_settings(settings: Settings, smtp_port: int, receiver: WebhookReceiver, **extra: Any) -> Settings:
    return settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": "citysoc@soc.city.example",
        "notify_soc_emails": (SOC_MAIL,), "notify_soc_webhook_url": f"{receiver.url}/soc",
        "notify_soc_webhook_secret": SecretStr(SOC_SECRET), "notify_interval": 0, **extra})


@pytest.fixture
def napp(settings: Settings, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver) -> Iterator[FastAPI]:
    app = create_app(notify_settings(settings, mailbox[1], receiver))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def api(napp: FastAPI) -> Iterator[SocApi]:
    with http_client(napp) as client:
        soc = SocApi(client, napp)
        soc.add_tenant(NG)
        soc.add_tenant(RS)
        yield soc


def add_contact(api: SocApi, tenant: str, channel: str, address: str) -> dict[str, Any]:
    answer = api.client.post(f"/api/v1/tenants/{tenant}/contacts", json={"channel": channel, "address": address},
                             headers=api.admin)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def drainer(app: FastAPI) -> OutboxDrainer:
    """A drainer as a (re)started API process builds it."""
    return outbox_drainer(app.state.settings, app.state.session_factory)


def log(api: SocApi, **params: Any) -> list[dict[str, Any]]:
    answer = api.client.get("/api/v1/notifications", params=params, headers=api.admin)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()
    return result


def test_a_new_high_case_reaches_the_members_and_the_socs_contacts_once(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    add_contact(api, NG, "email", "it-security@northgate.example")
    hook = add_contact(api, NG, "webhook", f"{receiver.url}/ng")
    assert hook["secret"].startswith("whsec_")
    receiver.secrets["/ng"] = hook["secret"]
    listed = api.client.get(f"/api/v1/tenants/{NG}/contacts", headers=api.admin)
    assert len(listed.json()) == 2 and hook["secret"] not in listed.text

    result = api.ingest(build_alert(NG, user="alice", level="high", rule_title="Console Login Without MFA"),
                        build_alert(RS, user="bob", level="medium"))
    assert len(result["cases"]) == 2
    ng_case = next(c for c in result["cases"] if api.case(c)["tenant_id"] == NG)
    report = drainer(napp).drain_once()
    assert (report.sent, report.retried, report.failed) == (4, 0, 0)  # member email + webhook, SOC email + webhook

    mails = {message["X-Envelope-To"]: message for message in mailbox[0].messages}
    assert set(mails) == {"it-security@northgate.example", SOC_MAIL}
    for message in mails.values():
        assert message["Subject"] == f"[CitySOC] new high case {ng_case} at {NG}"
        assert "Console Login Without MFA" in message.get_content() and message["Message-ID"].startswith("<msg_")
    by_path = {delivery.path: delivery for delivery in receiver.verified}
    assert set(by_path) == {"/ng", "/soc"} and receiver.refused == []
    for delivery in by_path.values():
        assert delivery.payload["type"] == "case.opened"
        assert (delivery.payload["data"]["case"]["id"], delivery.payload["data"]["case"]["tenant_id"]) == (ng_case, NG)
        assert delivery.headers["webhook-id"].startswith("msg_")

    entries = log(api)
    assert len(entries) == 4 and {e["status"] for e in entries} == {"sent"}
    assert all([a["ok"] for a in e["log"]] == [True] for e in entries)
    assert {(e["audience"], e["channel"]) for e in entries} == {
        ("tenant", "email"), ("tenant", "webhook"), ("soc", "email"), ("soc", "webhook")}

    # a restarted process sends nothing again; a later alert of the same case announces nothing new
    assert drainer(napp).drain_once().ids == []
    api.ingest(build_alert(NG, user="alice", level="critical", minutes=5))
    assert drainer(napp).drain_once().ids == []
    assert (len(mailbox[0].messages), len(receiver.verified), len(log(api))) == (2, 2, 4)


def test_a_members_contacts_never_hear_of_another_members_case(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    add_contact(api, NG, "email", "it@northgate.example")
    receiver.secrets["/ng"] = add_contact(api, NG, "webhook", f"{receiver.url}/ng")["secret"]
    [school_case] = api.ingest(build_alert(RS, level="critical", user="harry"))["cases"]
    assert drainer(napp).drain_once().sent == 2  # the SOC's email and webhook only
    assert [m["X-Envelope-To"] for m in mailbox[0].messages] == [SOC_MAIL]
    assert [(d.path, d.payload["data"]["case"]["id"]) for d in receiver.verified] == [("/soc", school_case)]
    assert {e["audience"] for e in log(api, tenant=RS)} == {"soc"} and log(api, tenant=NG) == []


def test_a_case_that_rises_to_high_is_announced_then(api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int]) -> None:
    [case_id] = api.ingest(build_alert(NG, user="carol", level="medium"))["cases"]
    assert drainer(napp).drain_once().ids == [] and log(api) == []
    api.ingest(build_alert(NG, user="carol", level="high", minutes=3))
    assert drainer(napp).drain_once().sent == 2  # SOC email + SOC webhook (the member has no contacts)
    assert {e["case_id"] for e in log(api)} == {case_id}


def test_failed_deliveries_back_off_exponentially_and_give_up_after_the_last_attempt(
    settings: Settings, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    app = create_app(notify_settings(settings, mailbox[1], receiver, notify_max_attempts=3,
                                     notify_soc_webhook_url=f"http://127.0.0.1:{free_port()}/closed"))
    try:
        with http_client(app) as client:
            api = SocApi(client, app)
            api.add_tenant(NG)
            hook = add_contact(api, NG, "webhook", f"{receiver.url}/flaky")
            receiver.secrets["/flaky"] = hook["secret"]
            receiver.fail["/flaky"] = 2
            api.ingest(build_alert(NG, level="critical"))
            t0 = datetime.now(UTC)
            sender = drainer(app)
            first = sender.drain_once(t0)
            assert (first.sent, first.retried) == (1, 2)  # the SOC's email went; the webhooks did not
            assert sender.drain_once(t0 + timedelta(seconds=29)).ids == []  # 30 s after the first failure
            assert sender.drain_once(t0 + timedelta(seconds=31)).retried == 2
            assert sender.drain_once(t0 + timedelta(seconds=31 + 59)).ids == []  # then 60 s
            third = sender.drain_once(t0 + timedelta(seconds=31 + 61))
            assert (third.sent, third.failed) == (1, 1)  # the flaky receiver accepts; the closed port is given up
            entries = {e["address"].rsplit("/", 1)[1]: e for e in log(api) if e["channel"] == "webhook"}
            flaky, closed = entries["flaky"], entries["closed"]
            assert (flaky["status"], flaky["attempts"], [a["ok"] for a in flaky["log"]]) == (
                "sent", 3, [False, False, True])
            assert [a["detail"] for a in flaky["log"]] == ["HTTP 500", "HTTP 500", "HTTP 204"]
            assert (closed["status"], closed["attempts"], closed["last_error"]) == ("failed", 3, "HTTP ConnectError")
            assert len(receiver.verified) == 1
            later = sender.drain_once(t0 + timedelta(hours=5)).ids  # (the SLA sweep finds the case's clocks late)
            assert flaky["id"] not in later and closed["id"] not in later
    finally:
        app.state.engine.dispose()


def test_a_sender_that_dies_holding_a_notification_loses_nothing(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    api.ingest(build_alert(NG, level="high"))
    now = datetime.now(UTC)
    dead = drainer(napp)
    held = dead.claim(now)  # ... and the process is killed before sending
    assert len(held) == 2
    restarted = drainer(napp)
    assert restarted.drain_once(now + timedelta(seconds=10)).ids == []  # still leased to the dead one
    assert sorted(restarted.drain_once(now + timedelta(minutes=3)).ids) == sorted(held)
    assert (len(mailbox[0].messages), len(receiver.verified)) == (1, 1)
    assert restarted.drain_once(now + timedelta(minutes=10)).ids == []


def test_an_unreachable_smtp_relay_is_retried(api: SocApi, napp: FastAPI, settings: Settings,
                                              receiver: WebhookReceiver) -> None:
    app = create_app(notify_settings(settings, free_port(), receiver))
    try:
        with http_client(app) as client:
            SocApi(client, app).ingest(build_alert(NG, level="high", user="dave"))
        report = drainer(app).drain_once()
        assert (report.sent, report.retried) == (1, 1)
        [mail] = [e for e in log(api) if e["channel"] == "email"]
        assert (mail["status"], mail["last_error"]) == ("pending", "SMTP ConnectionRefusedError")
    finally:
        app.state.engine.dispose()


def test_sla_breach_call_point_notifies_once_per_clock(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    [case_id] = api.ingest(build_alert(NG, level="medium", user="erin"))["cases"]
    due = datetime(2026, 12, 6, 4, 15, tzinfo=UTC)
    with napp.state.session_factory() as session:
        case = session.get_one(Case, case_id)
        for _ in range(2):
            notify_sla_breach(session=session, case=case, clock="acknowledge", due_at=due, soc=napp.state.soc_contacts)
        notify_sla_breach(session=session, case=case, clock="resolve", due_at=due, soc=napp.state.soc_contacts)
        session.commit()
    assert drainer(napp).drain_once().sent == 4  # two clocks x (SOC email, SOC webhook)
    subjects = sorted(message["Subject"].strip() for message in mailbox[0].messages)
    assert subjects == [f"[CitySOC] SLA breached (acknowledge) on medium case {case_id} at {NG}",
                        f"[CitySOC] SLA breached (resolve) on medium case {case_id} at {NG}"]
    payloads = [d.payload for d in receiver.verified]
    assert {(p["type"], p["data"]["clock"], p["data"]["due_at"]) for p in payloads} == {
        ("case.sla_breached", "acknowledge", due.isoformat()), ("case.sla_breached", "resolve", due.isoformat())}


def test_a_sweep_enqueues_before_the_drain_that_sends_it(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int]
) -> None:
    """The drainer's hook for checks of running clocks: what a sweep enqueues at `now` goes in the same round."""
    [case_id] = api.ingest(build_alert(NG, level="medium", user="gina"))["cases"]
    due = datetime.now(UTC) + timedelta(hours=1)

    def overdue(session: Session, now: datetime) -> int:
        case = session.get_one(Case, case_id)
        return notify_sla_breach(session=session, case=case, clock="triage", due_at=due,
                                 soc=napp.state.soc_contacts) if now > due else 0

    sender = OutboxDrainer(napp.state.session_factory, drainer(napp).notifiers, sweeps=[overdue])
    assert sender.drain_once(due - timedelta(minutes=1)).ids == []
    report = sender.drain_once(due + timedelta(seconds=1))
    assert (report.swept, report.sent, report.retried) == (2, 1, 1)  # SOC email sent; SOC webhook: no secret here
    assert sender.drain_once(due + timedelta(seconds=2)).swept == 0  # once per clock, however often it runs
    assert "SLA breached (triage)" in mailbox[0].messages[0]["Subject"]


def test_running_clocks_past_their_due_time_are_announced_once_by_the_api_drainer(
    api: SocApi, napp: FastAPI, mailbox: tuple[Mailbox, int]
) -> None:
    """The drainer the API builds sweeps for running SLA clocks past due (the member's default contract)."""
    [case_id] = api.ingest(build_alert(NG, level="medium", user="jo"))["cases"]
    [other] = api.ingest(build_alert(RS, level="medium", user="kim"))["cases"]
    worked = api.client.patch(f"/api/v1/cases/{other}", json={"status": "in_progress"}, headers=api.analyst)
    assert worked.status_code == 200, worked.text
    case = api.case(case_id)
    sla = case["sla"]
    assert sla["acknowledge"]["breached"] is False
    sender = drainer(napp)
    assert sender.drain_once().swept == 0  # nothing due yet
    later = datetime.fromisoformat(sla["resolve"]["due_at"]) + timedelta(minutes=1)
    report = sender.drain_once(later)
    # NG's three running clocks, RS's resolve clock (its acknowledge and triage stopped): x (SOC email, webhook)
    assert (report.swept, report.sent) == (8, 8)
    subjects = sorted(m["Subject"].strip() for m in mailbox[0].messages)
    assert subjects == sorted([f"[CitySOC] SLA breached ({clock}) on medium case {case_id} at {NG}"
                               for clock in ("acknowledge", "triage", "resolve")]
                              + [f"[CitySOC] SLA breached (resolve) on medium case {other} at {RS}"])
    assert sender.drain_once(later + timedelta(hours=1)).swept == 0  # announced once


class ExplodingNotifier(Notifier):
    """A plug-in notifier that fails in a way no notifier should (an unexpected exception naming its URL)."""

    channel = "webhook"

    def send(self, message: OutgoingMessage) -> str:
        raise RuntimeError(f"bug while posting to {message.address}")


def test_an_unexpected_notifier_error_is_a_failed_attempt_not_a_stuck_row(api: SocApi, napp: FastAPI) -> None:
    api.ingest(build_alert(NG, level="high", user="ivy"))
    sender = OutboxDrainer(napp.state.session_factory, {**drainer(napp).notifiers, "webhook": ExplodingNotifier()})
    report = sender.drain_once()
    assert (report.sent, report.retried) == (1, 1)
    [hook] = [e for e in log(api) if e["channel"] == "webhook"]
    assert (hook["status"], hook["attempts"], hook["last_error"]) == ("pending", 1, "webhook RuntimeError")


def test_contacts_are_managed_by_city_admins_and_checked(api: SocApi, napp: FastAPI) -> None:
    body = {"channel": "email", "address": "a@northgate.example"}
    for role, tenant in ((Role.SOC_ANALYST, None), (Role.TENANT_RESPONDER, NG), (Role.SERVICE, None)):
        refused = api.client.post(f"/api/v1/tenants/{NG}/contacts", json=body, headers=api.headers(role, tenant))
        assert refused.status_code == 403
    assert api.client.post("/api/v1/tenants/no-such-member/contacts", json=body,
                           headers=api.admin).status_code == 404
    for channel, address in (("email", "not an address"), ("webhook", "ftp://x.example/h"), ("webhook", "https://"),
                             ("webhook", "http://["), ("webhook", "http://a.example:99999/"),
                             ("sms", "+44 7700 900000")):
        answer = api.client.post(f"/api/v1/tenants/{NG}/contacts", json={"channel": channel, "address": address},
                                 headers=api.admin)
        assert answer.status_code == 422 and ("address" in answer.text or "channel" in answer.text)
    contact = add_contact(api, NG, "webhook", "https://hooks.northgate.example/soc")
    assert api.client.post(f"/api/v1/tenants/{NG}/contacts", json={"channel": "webhook",
                           "address": "https://hooks.northgate.example/soc"}, headers=api.admin).status_code == 422
    assert api.client.delete(f"/api/v1/tenants/{RS}/contacts/{contact['id']}", headers=api.admin).status_code == 404
    api.ingest(build_alert(NG, level="high", user="frank"))
    assert api.client.delete(f"/api/v1/tenants/{NG}/contacts/{contact['id']}", headers=api.admin).status_code == 204
    drainer(napp).drain_once()
    [removed] = [e for e in log(api, tenant=NG) if e["audience"] == "tenant"]
    assert (removed["status"], removed["last_error"]) == ("failed", "the contact was removed")
    assert api.client.get("/api/v1/notifications", headers=api.analyst).status_code == 403


def test_no_secret_reaches_a_log_line(api: SocApi, napp: FastAPI, receiver: WebhookReceiver,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    hook = add_contact(api, NG, "webhook", f"{receiver.url}/ng?token=url-secret")
    receiver.fail["/ng?token=url-secret"] = 1
    api.ingest(build_alert(NG, level="high"))
    drainer(napp).drain_once()
    drainer(napp).drain_once(datetime.now(UTC) + timedelta(minutes=5))
    output = capsys.readouterr()
    text = output.out + output.err
    assert "notification sent" in text and "will be retried" in text
    for secret in (hook["secret"], hook["secret"].removeprefix("whsec_"), SOC_SECRET, "url-secret"):
        assert secret not in text


def test_the_api_process_drains_the_outbox_in_the_background(
    settings: Settings, mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    app = create_app(notify_settings(settings, mailbox[1], receiver, notify_interval=0.2))

    def post_and_wait() -> None:
        with http_client(app) as client:
            api = SocApi(client, app)
            api.add_tenant(NG)
            api.ingest(build_alert(NG, level="critical"))
        deadline = time.monotonic() + 20
        while len(receiver.verified) < 1 or len(mailbox[0].messages) < 1:
            assert time.monotonic() < deadline, "the background drainer sent nothing"
            time.sleep(0.1)

    async def serve() -> None:
        async with drain_in_background(app):  # the app's lifespan, as uvicorn runs it
            await asyncio.to_thread(post_and_wait)

    try:
        asyncio.run(serve())
    finally:
        app.state.engine.dispose()
