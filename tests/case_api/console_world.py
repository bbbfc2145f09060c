"""A small city for the console tests: two members with cases (one campaign across them), users of every
console role, and a browser-like client that signs in with a key and posts forms with the page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from case_api.app import create_app
from case_api.auth.models import ApiKeyIn, Role
from case_api.auth.service import create_api_key
from case_api.db import upgrade_database
from case_api.settings import Settings
from tests.case_api.conftest import SocApi, _postgres_database, build_alert, http_client

HOSPITAL, SCHOOL = "northgate-hospital", "riverside-school"
ATTACKER = "203.0.113.50"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


class Browser:
    """An httpx client that keeps cookies, like a browser, and fills in the page's CSRF token."""

    def __init__(self, app: FastAPI, *, tls: bool = False) -> None:
        self.http = http_client(app)
        if tls:
            self.http.base_url = httpx.URL("https://testserver")
        self.csrf = ""

    def get(self, path: str, **params: Any) -> httpx.Response:
        response = self.http.get(path, params=params)
        if "csrf_token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        form = {"csrf_token": self.csrf if csrf is None else csrf, **(data or {})}
        return self.http.post(path, data=form, headers=headers)

    def sign_in(self, api_key: str, next_path: str = "") -> httpx.Response:
        self.get("/console/login")
        return self.post("/console/login", {"api_key": api_key, "next": next_path})


@dataclass
class World:
    app: FastAPI
    soc: SocApi
    keys: dict[str, str]  # user id -> API key
    cases: dict[str, list[int]] = field(default_factory=dict)  # tenant -> its case ids
    campaign_cases: dict[str, int] = field(default_factory=dict)  # tenant -> its case in the campaign

    def browser(self, user: str | None = None, *, tls: bool = False) -> Browser:
        browser = Browser(self.app, tls=tls)
        if user is not None:
            response = browser.sign_in(self.keys[user])
            assert response.status_code == 303, response.text
        return browser

    def key_for(self, user: str, role: Role, tenant: str | None = None) -> str:
        with self.app.state.session_factory() as session:
            _, secret = create_api_key(session=session, key_in=ApiKeyIn(name=user, role=role, tenant_id=tenant))
        self.keys[user] = secret
        return secret


USERS = {
    "ann": (Role.SOC_ANALYST, None),
    "lead": (Role.SOC_LEAD, None),
    "hugh": (Role.TENANT_RESPONDER, HOSPITAL),
    "vera": (Role.TENANT_VIEWER, HOSPITAL),
    "sam": (Role.TENANT_RESPONDER, SCHOOL),
    "rita": (Role.RULE_AUTHOR, None),
}


def build_world(app: FastAPI) -> World:
    soc = SocApi(http_client(app), app)
    world = World(app=app, soc=soc, keys={})
    for member in (HOSPITAL, SCHOOL):
        soc.add_tenant(member, member.replace("-", " ").title())
    for user, (role, tenant) in USERS.items():
        world.key_for(user, role, tenant)
    attack = [build_alert(t, level="high", minutes=n * 30, rule_title="SSH Login As Root Accepted",
                          entities={"source.ip": [ATTACKER], "user.name": [f"root-{t}"], "host.name": [f"{t}-web"]})
              for n, t in enumerate((HOSPITAL, SCHOOL))]
    soc.ingest(*attack)
    soc.ingest(*(build_alert(HOSPITAL, user=f"nurse{n}", level=("low", "medium", "critical")[n % 3], minutes=n)
                 for n in range(4)))
    soc.ingest(build_alert(SCHOOL, user="teacher", level="medium"))
    cases = soc.client.get("/api/v1/cases", headers=soc.analyst, params={"limit": 1000}).json()
    for case in cases:
        world.cases.setdefault(case["tenant_id"], []).append(case["id"])
        if case["title"].startswith("SSH Login As Root"):
            world.campaign_cases[case["tenant_id"]] = case["id"]
    assert set(world.campaign_cases) == {HOSPITAL, SCHOOL}
    return world


def world_fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Body of a module-scoped ``world`` fixture: SQLite unless parametrised indirectly with "postgresql"."""
    backend = getattr(request, "param", "sqlite")
    home = tmp_path_factory.mktemp("console-home")
    urls: Iterator[str]
    if backend == "sqlite":
        url = f"sqlite:///{Path(home) / 'cases.db'}"
        upgrade_database(url)
        urls = iter([url])
    else:
        urls = _postgres_database()
    url = next(urls)
    app = create_app(Settings(home=home, database_url=url, notify_interval=0))
    try:
        yield build_world(app)
    finally:
        app.state.engine.dispose()
        for _ in urls:  # drops the PostgreSQL database
            pass
