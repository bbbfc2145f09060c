"""Console sign-in (sessions, cookies, CSRF, what ends a session) and the analysts' queue (filters, the polled
rows fragment, bulk actions, Server-Timing)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from case_api.auth.models import ApiKey, Role, User
from case_api.cases.models import Case
from case_api.console.models import ConsoleSession
from case_api.db import utcnow
from tests.case_api.console_world import HOSPITAL, SCHOOL, World, world_fixture


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from world_fixture(request, tmp_path_factory)


def _row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-case-id="(\d+)"', html)]


def test_pages_need_a_session_and_send_the_browser_to_sign_in(world: World) -> None:
    browser = world.browser()
    for path in ("/console/", "/console/queue", "/console/queue/rows", f"/console/cases/{world.cases[HOSPITAL][0]}"):
        response = browser.http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=%2Fconsole%2F")
    assert browser.post("/console/queue/bulk", {"action": "assign"}).status_code == 303


def test_sign_in_sets_a_hardened_session_cookie_and_lands_on_the_asked_page(world: World) -> None:
    browser = world.browser()
    page = browser.get("/console/login", next="/console/queue?severity=high")
    assert page.status_code == 200
    assert 'id="api-key"' in page.text and 'for="api-key"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    signed_in = browser.post("/console/login", {"api_key": world.keys["ann"], "next": "/console/queue?severity=high"})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/console/queue?severity=high"
    cookie = next(value for value in signed_in.headers.get_list("set-cookie") if value.startswith("citysoc_console="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is Secure (next test)
    assert world.keys["ann"] not in cookie
    queue = browser.get("/console/queue")
    assert queue.status_code == 200 and 'data-testid="signed-in-as"' in queue.text


def test_the_cookie_is_secure_when_served_over_tls(world: World) -> None:
    browser = world.browser(tls=True)
    signed_in = browser.sign_in(world.keys["ann"])
    assert signed_in.status_code == 303
    cookie = next(value for value in signed_in.headers.get_list("set-cookie") if value.startswith("citysoc_console="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_a_wrong_key_a_rule_author_and_a_forged_sign_in_form_are_refused(world: World) -> None:
    browser = world.browser()
    wrong = browser.sign_in("not-a-key")
    assert wrong.status_code == 401 and "unknown or revoked API key" in wrong.text
    author = browser.sign_in(world.keys["rita"])
    assert author.status_code == 401 and "no console pages" in author.text
    forged = world.browser()  # no sign-in page read: no login CSRF cookie
    refused = forged.post("/console/login", {"api_key": world.keys["ann"]}, csrf="guess")
    assert refused.status_code == 403
    assert "citysoc_console=" not in " ".join(refused.headers.get_list("set-cookie"))
    outside = world.browser()
    outside.get("/console/login")
    landed = outside.post("/console/login", {"api_key": world.keys["ann"], "next": "https://evil.example/x"})
    assert landed.headers["location"] == "/console/"  # never an open redirect


def test_every_post_needs_the_sessions_csrf_token_and_the_same_origin(world: World) -> None:
    browser = world.browser("ann")
    case_id = world.cases[SCHOOL][-1]
    browser.get("/console/queue")
    for csrf in ("", "x" * 43):
        refused = browser.post("/console/queue/bulk", {"action": "assign", "assignee": "me", "case_ids": case_id},
                               csrf=csrf)
        assert refused.status_code == 403 and "stale or came from another site" in refused.text
    cross = browser.post("/console/queue/bulk", {"action": "assign", "assignee": "me", "case_ids": case_id},
                         headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    other = world.browser("lead")  # another session's token is no good here either
    other.get("/console/queue")
    assert browser.post("/console/queue/bulk", {"action": "assign", "assignee": "me", "case_ids": case_id},
                        csrf=other.csrf).status_code == 403
    case = world.soc.case(case_id)
    assert case["assignee"] is None


def test_sign_out_ends_the_session_on_the_server(world: World) -> None:
    browser = world.browser("ann")
    cookie = browser.http.cookies["citysoc_console"]
    browser.get("/console/queue")
    assert browser.post("/console/logout").headers["location"] == "/console/login"
    replay = world.browser()
    replay.http.cookies.set("citysoc_console", cookie, domain="testserver.local", path="/console")
    assert replay.http.get("/console/queue").status_code == 303


@pytest.mark.parametrize("ending", ["revoked", "expired", "disabled"])
def test_revoking_or_expiring_the_key_or_disabling_the_user_ends_the_session(world: World, ending: str) -> None:
    user = f"temp-{ending}"
    world.key_for(user, Role.SOC_ANALYST, None)
    browser = world.browser(user)
    assert browser.get("/console/queue").status_code == 200
    now = utcnow()
    with world.app.state.session_factory() as session:
        if ending == "disabled":
            session.execute(update(User).where(User.id == user).values(disabled_at=now))
        else:
            column = ApiKey.revoked_at if ending == "revoked" else ApiKey.expires_at
            session.execute(update(ApiKey).where(ApiKey.user_id == user).values({column: now - timedelta(seconds=1)}))
        session.commit()
    assert browser.http.get("/console/queue").status_code == 303
    with world.app.state.session_factory() as session:  # ended for good, even if the key came back
        session.execute(update(ApiKey).where(ApiKey.user_id == user).values(revoked_at=None, expires_at=None))
        session.execute(update(User).where(User.id == user).values(disabled_at=None))
        session.commit()
        rows = session.query(ConsoleSession).filter(ConsoleSession.user_id == user).all()
        assert rows and all(row.revoked_at is not None for row in rows)
    assert browser.http.get("/console/queue").status_code == 303


def test_the_queue_lists_open_cases_in_queue_order_with_countdowns_and_filters(world: World) -> None:
    browser = world.browser("ann")
    page = browser.get("/console/queue")
    assert page.status_code == 200
    api_order = [c["id"] for c in world.soc.client.get("/api/v1/cases", params={"open": "true", "limit": 1000},
                                                        headers=world.soc.analyst).json()]
    assert _row_ids(page.text) == api_order[:50]
    assert "data-countdown" in page.text
    timing = page.headers["server-timing"]
    parts = dict(re.findall(r"(\w+);dur=([\d.]+)", timing))
    assert list(parts) == ["session", "query", "render", "total"], timing
    assert float(parts["total"]) >= float(parts["session"]) + float(parts["query"]) + float(parts["render"]) - 0.3
    school = browser.get("/console/queue", tenant=SCHOOL)
    assert set(_row_ids(school.text)) == set(world.cases[SCHOOL]) - set(_closed(world))
    critical = _row_ids(browser.get("/console/queue", severity="critical").text)
    assert critical and all(world.soc.case(i)["severity"] == "critical" for i in critical)
    assert _row_ids(browser.get("/console/queue", sla="no_clock").text) == [
        i for i in api_order if world.soc.case(i)["sla_due_at"] is None]
    due = {i: _time(world.soc.case(i)["sla_due_at"]) for i in api_order}
    running = {i: moment for i, moment in due.items() if moment is not None}
    soon = utcnow() + timedelta(hours=1)  # the console's "due soon": within the hour
    assert _row_ids(browser.get("/console/queue", sla="due_soon").text) == [
        i for i in api_order if i in running and running[i] < soon]
    assert _row_ids(browser.get("/console/queue", sla="on_track").text) == [
        i for i in api_order if i in running and running[i] > soon]
    late = api_order[-1]
    with world.app.state.session_factory() as session:  # the cases are minutes old: make one late
        session.execute(update(Case).where(Case.id == late).values(sla_due_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    assert _row_ids(browser.get("/console/queue", sla="overdue").text) == [late]
    assert 'class="countdown overdue"' in browser.get("/console/queue", sla="overdue").text


def test_the_rows_fragment_shows_a_new_case_and_follows_the_filters(world: World) -> None:
    from tests.case_api.conftest import build_alert

    browser = world.browser("ann")
    before = browser.get("/console/queue/rows", tenant=HOSPITAL)
    assert before.status_code == 200 and before.text.lstrip().startswith("<tbody")
    assert "server-timing" in before.headers
    [new_case] = world.soc.ingest(build_alert(HOSPITAL, user="newcomer", level="critical"))["cases"]
    after = browser.get("/console/queue/rows", tenant=HOSPITAL)
    assert new_case in _row_ids(after.text) and new_case not in _row_ids(before.text)
    assert new_case not in _row_ids(browser.get("/console/queue/rows", tenant=SCHOOL).text)
    world.cases[HOSPITAL].append(new_case)


def test_bulk_assign_close_and_merge_from_the_queue(world: World) -> None:
    from tests.case_api.conftest import build_alert

    browser = world.browser("ann")
    ids = world.soc.ingest(*(build_alert(SCHOOL, user=f"pupil{n}", level="medium") for n in range(4)))["cases"]
    world.cases[SCHOOL].extend(ids)
    browser.get("/console/queue")
    assigned = browser.post("/console/queue/bulk", {"action": "assign", "assignee": "me", "case_ids": ids[:2],
                                                    "filter_tenant": SCHOOL})
    assert assigned.status_code == 303 and assigned.headers["location"] == f"/console/queue?tenant={SCHOOL}"
    assert [world.soc.case(i)["assignee"] for i in ids[:2]] == ["ann", "ann"]
    flash = browser.get("/console/queue")
    assert "assign: 2 of 2 cases done" in flash.text and 'id="flash"' in flash.text
    assert 'id="flash"' not in browser.get("/console/queue").text  # shown once
    no_resolution = browser.post("/console/queue/bulk", {"action": "close", "case_ids": ids[2]})
    assert no_resolution.status_code == 303
    assert "close needs a resolution" in browser.get("/console/queue").text
    closed = browser.post("/console/queue/bulk", {"action": "close", "resolution": "benign", "case_ids": ids[2],
                                                  "comment": "scanner we run"})
    assert closed.status_code == 303
    case = world.soc.case(ids[2])
    assert (case["status"], case["resolution"]) == ("closed", "benign")
    merged = browser.post("/console/queue/bulk", {"action": "merge", "into": ids[0], "case_ids": [ids[0], ids[3]]})
    assert merged.status_code == 303
    assert world.soc.case(ids[3])["merged_into_id"] == ids[0]
    events = [e["action"] for e in world.soc.case(ids[0])["events"]]
    assert "assigned" in events and "merged" in events


def test_bulk_assign_offers_the_users_who_may_be_assigned(world: World) -> None:
    choices = re.findall(r'<option value="([^"]+)"></option>',
                         world.browser("ann").get("/console/queue").text.split('id="bulk-assignee-choices"')[1]
                         .split("</datalist>")[0])
    assert {"me", "ann", "lead", "hugh", "sam"} <= set(choices)
    assert not {"vera", "rita"} & set(choices)  # a viewer and a rule author work no case
    member = world.browser("hugh").get("/console/queue").text.split('id="bulk-assignee-choices"')[1]
    assert "hugh" in member and '"sam"' not in member.split("</datalist>")[0]  # never another member's users


def test_a_viewer_sees_the_queue_without_bulk_actions_and_cannot_post_them(world: World) -> None:
    browser = world.browser("vera")
    page = browser.get("/console/queue")
    assert page.status_code == 200 and 'id="bulk-form"' not in page.text
    assert set(_row_ids(page.text)) <= set(world.cases[HOSPITAL])
    refused = browser.post("/console/queue/bulk", {"action": "assign", "assignee": "vera",
                                                   "case_ids": world.cases[HOSPITAL][0]})
    assert refused.status_code == 403 and "may not change them" in refused.text


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _closed(world: World) -> list[int]:
    cases = world.soc.client.get("/api/v1/cases", params={"limit": 1000}, headers=world.soc.analyst).json()
    return [c["id"] for c in cases if c["status"] in ("resolved", "closed")]


def test_sign_in_deletes_sessions_ended_more_than_a_day_ago(world: World) -> None:
    old = utcnow() - timedelta(days=2)
    with world.app.state.session_factory() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.user_id == "lead")).one()
        session.add_all([
            ConsoleSession(id_sha256="a" * 64, user_id="lead", key_id=key_id, csrf_token="x", created_at=old,
                           expires_at=old + timedelta(hours=1)),
            ConsoleSession(id_sha256="b" * 64, user_id="lead", key_id=key_id, csrf_token="x", created_at=old,
                           expires_at=utcnow() + timedelta(hours=1), revoked_at=old),
            ConsoleSession(id_sha256="c" * 64, user_id="lead", key_id=key_id, csrf_token="x", created_at=utcnow(),
                           expires_at=utcnow() + timedelta(hours=1), revoked_at=utcnow()),
        ])
        session.commit()
    world.browser("lead")
    with world.app.state.session_factory() as session:
        left = {row.id_sha256 for row in session.query(ConsoleSession).filter(ConsoleSession.user_id == "lead")}
    # full ids: a new session's SHA-256 may itself begin with "a" (one sign-in in 16 did)
    assert "a" * 64 not in left and "b" * 64 not in left and "c" * 64 in left


def test_the_script_and_style_sheet_are_served_and_bad_parameters_answer_a_page(world: World) -> None:
    browser = world.browser("ann")
    script = browser.http.get("/console/static/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "data-countdown" in script.text and "fetch(" in script.text
    assert browser.http.get("/console/static/console.css").status_code == 200
    page = browser.get("/console/queue")
    assert '<script src="/console/static/console.js" defer></script>' in page.text and "<script>" not in page.text
    bad = browser.http.get("/console/queue", params={"offset": "-1"})
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"] and "offset" in bad.text
    missing = browser.http.get("/console/no-such-page")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    api = world.soc.client.get("/api/v1/cases/999999", headers=world.soc.analyst)  # the API still answers JSON
    assert api.status_code == 404 and api.json() == {"detail": "case 999999 not found"}
