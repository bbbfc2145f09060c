"""Authorization matrix: every operation of the OpenAPI document x every role x own/other/missing object.

The operations come from ``app.openapi()`` at run time, so an endpoint added to the API without an
entry in ``MATRIX`` fails here, naming itself. The roles come from the ``Role`` enum, so a new role is
checked too (and expected to be refused everywhere until an entry lets it in). Who may do what is
written out below as the expectation, independently of ``case_api/auth/roles.py``: a change to the
code's policy that is not also made here shows up as a mismatch.

The member roles (tenant responder, tenant viewer) are bound to ``OWN``. For each request:

- no credentials, or an unknown key: 401;
- a role the operation does not allow: 403, whatever the object (decided before any lookup, so it
  says nothing about the object);
- the caller's own tenant's object: the operation's success status;
- another tenant's object: a member role gets 404, exactly as for a missing object (never 403, which
  would reveal that it exists); list endpoints filtered on another tenant answer an empty list;
  the city roles see every tenant;
- a missing object: 404 (or, where the operation names a tenant to create something for, 422 for
  an unregistered tenant).

Every 2xx answer to a member role is also searched for the other tenant's id (which is part of its
user names, source names and dead letters): any occurrence is a leak.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from case_api.auth.models import Role
from case_api.settings import Settings
from case_api.sla.models import DEFAULT_CONTRACT
from citysoc.deadletter import DeadLetter, DeadLetterStore
from tests.case_api.conftest import Headers, SocApi, build_alert

OWN, OTHER, THIRD = "northgate-hospital", "riverside-school", "riverside-council"
MISSING_TENANT = "no-such-member"
MISSING_ID = 2_000_000_000
#: Indicators of the two campaigns: one linking OWN's case with OTHER's, one that OWN is not part of.
SHARED_IP, ELSEWHERE_IP = "203.0.113.50", "198.51.100.7"

Which = Literal["own", "other", "missing"]
WHICH: tuple[Which, ...] = ("own", "other", "missing")

CITY = (Role.ADMIN, Role.SOC_LEAD, Role.SOC_ANALYST)
MEMBERS = (Role.TENANT_RESPONDER, Role.TENANT_VIEWER)
EVERYONE = tuple(Role)
READERS = (*CITY, *MEMBERS)
WORKERS = (*CITY, Role.TENANT_RESPONDER)
ADMIN = (Role.ADMIN,)
ALERT_WRITERS = (Role.ADMIN, Role.SERVICE)
SOURCE_WRITERS = (*WORKERS, Role.SERVICE)
SOURCE_READERS = (*SOURCE_WRITERS, Role.TENANT_VIEWER, Role.RULE_AUTHOR)
SOURCE_ACCESS = (Role.ADMIN, Role.SERVICE)
DEAD_LETTER_READERS = READERS
AUDIT_READERS = (Role.ADMIN, Role.SOC_LEAD)


@dataclass(frozen=True)
class Call:
    """What to send, apart from the method, the path template and the credentials."""

    path: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None


class World:
    """Four members with cases, campaigns, tasks, sources, keys and dead letters; a key per role.

    Objects an operation changes are made afresh for each request expected to succeed (``new_*``), so
    every request meets the state its expectation assumes; a request expected to be refused (401, 403,
    404) gets spare objects made once, which it must leave unchanged. Read-only targets are shared.
    """

    def __init__(self, soc: SocApi, dead_letters: DeadLetterStore) -> None:
        self.soc = soc
        self._numbers = itertools.count(1)
        self._refused = False
        self._spares: dict[tuple[str, str, int], int] = {}
        self._spares_used = itertools.count()
        for tenant in (OWN, OTHER, THIRD):
            soc.add_tenant(tenant)
        self.keys: dict[Role, Headers] = {
            role: soc.headers(role, OWN if role.is_tenant_bound else None, name=f"matrix-{role.value}")
            for role in Role
        }
        # OWN's and OTHER's shared cases form one campaign; OTHER and THIRD another that OWN is not in.
        self.cases = {OWN: self.new_case(OWN, ip=SHARED_IP), OTHER: self.new_case(OTHER, ip=SHARED_IP)}
        self.new_case(OTHER, ip=ELSEWHERE_IP)
        self.new_case(THIRD, ip=ELSEWHERE_IP)
        campaigns = self._get("/api/v1/campaigns")
        by_ip = {c["indicator"]["value"]: c["id"] for c in campaigns}
        self.campaigns = {OWN: by_ip[SHARED_IP], OTHER: by_ip[ELSEWHERE_IP]}
        self.tasks = {tenant: self.new_task(tenant) for tenant in (OWN, OTHER)}
        self.sources = {tenant: self.new_source(tenant) for tenant in (OWN, OTHER)}
        for tenant in (OWN, OTHER):
            soc.post_alerts(build_alert(tenant, entities={"user.name": [f"u-{tenant}"]}))
            dead_letters.put([DeadLetter(tenant, "syslog", f"udp {tenant} #1", "not syslog", f"raw of {tenant}")])

    def number(self) -> int:
        return next(self._numbers)

    def next_request(self, *, refused: bool) -> None:
        """Before each request: whether it is expected to be refused (and may use spare objects)."""
        self._refused = refused
        self._spares_used = itertools.count()

    def _fresh(self, kind: str, tenant: str, make: Callable[[], int]) -> int:
        if not self._refused:
            return make()
        slot = (kind, tenant, next(self._spares_used))
        if slot not in self._spares:
            self._spares[slot] = make()
        return self._spares[slot]

    def _get(self, path: str) -> Any:
        response = self.soc.client.get(path, headers=self.soc.admin)
        assert response.status_code == 200, response.text
        return response.json()

    def _post(self, path: str, body: Any, status: int = 201) -> Any:
        response = self.soc.client.post(path, json=body, headers=self.soc.admin)
        assert response.status_code == status, response.text
        return response.json()

    def new_case(self, tenant: str, *, ip: str | None = None) -> int:
        """A new open case of ``tenant`` (its user name carries the tenant id, for the leak check)."""
        return self._fresh("case", tenant, lambda: self._make_case(tenant, ip=ip))

    def _make_case(self, tenant: str, *, ip: str | None = None) -> int:
        entities: dict[str, list[str]] = {"user.name": [f"user{self.number()}-{tenant}"]}
        if ip:
            entities["source.ip"] = [ip]
        [case_id] = self.soc.ingest(build_alert(tenant, level="medium", entities=entities))["cases"]
        assert isinstance(case_id, int)
        return case_id

    def new_task(self, tenant: str) -> int:
        return self._fresh("task", tenant, lambda: self._make_task(tenant))

    def _make_task(self, tenant: str) -> int:
        task_id = self._post(f"/api/v1/cases/{self.cases[tenant]}/tasks", {"title": f"call {tenant}"})["id"]
        assert isinstance(task_id, int)
        return task_id

    def new_source(self, tenant: str) -> int:
        return self._fresh("source", tenant, lambda: self._make_source(tenant))

    def _make_source(self, tenant: str) -> int:
        name = f"trail{self.number()}-{tenant}"
        body = {"tenant_id": tenant, "kind": "http", "parser": "aws.cloudtrail", "name": name}
        source_id = self._post("/api/v1/sources", body)["id"]
        assert isinstance(source_id, int)
        return source_id

    def new_contact(self, tenant: str) -> int:
        body = {"channel": "email", "address": f"duty{self.number()}@{tenant}.example"}
        contact_id = self._post(f"/api/v1/tenants/{tenant}/contacts", body)["id"]
        assert isinstance(contact_id, int)
        return contact_id

    def new_user(self, tenant: str) -> str:
        user_id = f"viewer{self.number()}-{tenant}"
        self._post("/api/v1/users", {"id": user_id, "role": "tenant_viewer", "tenant_id": tenant})
        return user_id

    def new_key(self, tenant: str) -> int:
        return self._fresh("key", tenant, lambda: self._make_key(tenant))

    def _make_key(self, tenant: str) -> int:
        body = {"name": f"viewer{self.number()}", "role": "tenant_viewer", "tenant_id": tenant}
        key_id = self._post("/api/v1/keys", body)["id"]
        assert isinstance(key_id, int)
        return key_id


def tenant_of(which: Which) -> str:
    return {"own": OWN, "other": OTHER, "missing": MISSING_TENANT}[which]


Target = Callable[[World, Which], Call]


def no_object(call: Call | None = None) -> Target:
    return lambda _world, _which: call or Call()


def tenant_filter(_world: World, which: Which) -> Call:
    return Call(params={"tenant": tenant_of(which)})


def shared_case(world: World, which: Which) -> Call:
    return Call(path={"case_id": MISSING_ID if which == "missing" else world.cases[tenant_of(which)]})


def fresh_case(body: Any) -> Target:
    def target(world: World, which: Which) -> Call:
        case_id = MISSING_ID if which == "missing" else world.new_case(tenant_of(which))
        return Call(path={"case_id": case_id}, json=body)

    return target


def on_shared_case(body: Any) -> Target:
    def target(world: World, which: Which) -> Call:
        return Call(path=shared_case(world, which).path, json=body)

    return target


def fresh_task(world: World, which: Which) -> Call:
    if which == "missing":
        return Call(path={"case_id": world.cases[OWN], "task_id": MISSING_ID}, json={"status": "done"})
    tenant = tenant_of(which)
    return Call(path={"case_id": world.cases[tenant], "task_id": world.new_task(tenant)}, json={"status": "done"})


def merge(world: World, which: Which) -> Call:
    if which == "missing":
        return Call(path={"case_id": MISSING_ID}, json={"sources": [world.new_case(OWN)]})
    tenant = tenant_of(which)
    return Call(path={"case_id": world.new_case(tenant)}, json={"sources": [world.new_case(tenant)]})


def bulk_close(world: World, which: Which) -> Call:
    case_id = MISSING_ID if which == "missing" else world.new_case(tenant_of(which))
    return Call(json={"action": "close", "case_ids": [case_id], "resolution": "benign"})


def bulk_outcome(response: httpx.Response) -> int:
    """A bulk answer is 200 with one outcome per case: count a refused case as its error's status."""
    if response.status_code != 200:
        return response.status_code
    results = response.json()
    if all(result["ok"] for result in results):
        return 200
    if all(not result["ok"] and "not found" in result["detail"] for result in results):
        return 404
    return 0  # mixed or another refusal: matches no expectation, so the answer is reported


def shared_campaign(world: World, which: Which) -> Call:
    return Call(path={"campaign_id": MISSING_ID if which == "missing" else world.campaigns[tenant_of(which)]})


def shared_source(body: Any = None) -> Target:
    def target(world: World, which: Which) -> Call:
        return Call(path={"source_id": MISSING_ID if which == "missing" else world.sources[tenant_of(which)]},
                    json=body)

    return target


def fresh_source(world: World, which: Which) -> Call:
    return Call(path={"source_id": MISSING_ID if which == "missing" else world.new_source(tenant_of(which))})


def new_source_body(world: World, which: Which) -> Call:
    tenant = tenant_of(which)
    return Call(json={"tenant_id": tenant, "kind": "syslog", "name": f"auth{world.number()}-{tenant}"})


def new_tenant(world: World, _which: Which) -> Call:
    return Call(json={"id": f"member-{world.number()}", "name": "A new member"})


def tenant_path(_world: World, which: Which) -> Call:
    return Call(path={"tenant_id": tenant_of(which)}, json={"asset_criticality": "high"})


def contract_path(body: Any = None) -> Target:
    return lambda _world, which: Call(path={"tenant_id": tenant_of(which)}, json=body)


CONTRACT = DEFAULT_CONTRACT.model_dump(mode="json")


def new_key_body(world: World, which: Which) -> Call:
    return Call(json={"name": f"viewer{world.number()}", "role": "tenant_viewer", "tenant_id": tenant_of(which)})


def new_user_body(world: World, which: Which) -> Call:
    return Call(json={"id": f"user{world.number()}", "role": "tenant_viewer", "tenant_id": tenant_of(which)})


def fresh_user(body: Any = None) -> Target:
    def target(world: World, which: Which) -> Call:
        return Call(path={"user_id": "no-such-user" if which == "missing" else world.new_user(tenant_of(which))},
                    json=body)

    return target


def fresh_key(world: World, which: Which) -> Call:
    return Call(path={"key_id": MISSING_ID if which == "missing" else world.new_key(tenant_of(which))})


def new_contact_body(world: World, which: Which) -> Call:
    tenant = tenant_of(which)
    address = f"it{world.number()}@{tenant}.example"
    return Call(path={"tenant_id": tenant}, json={"channel": "email", "address": address})


def tenant_contacts(_world: World, which: Which) -> Call:
    return Call(path={"tenant_id": tenant_of(which)})


def fresh_contact(world: World, which: Which) -> Call:
    if which == "missing":
        return Call(path={"tenant_id": OWN, "contact_id": MISSING_ID})
    tenant = tenant_of(which)
    return Call(path={"tenant_id": tenant, "contact_id": world.new_contact(tenant)})


def new_alert(world: World, which: Which) -> Call:
    tenant = tenant_of(which)
    return Call(json={"alerts": [build_alert(tenant, entities={"user.name": [f"user{world.number()}-{tenant}"]})]})


@dataclass(frozen=True)
class Entry:
    """What one operation lets each role do, and how to aim it at an own, other or missing object.

    ``roles`` None: public. ``other``: what a member role gets for another tenant's object (city roles
    get ``ok``). ``missing``: for a missing object; ``member_missing`` when a member role gets something
    else. ``listing``: a list endpoint whose own-tenant answer holds rows and whose other-tenant answer,
    for a member role, is empty. ``outcome``: the effective status of an answer that reports per item.
    """

    roles: tuple[Role, ...] | None
    target: Target
    ok: int = 200
    other: int = 404
    missing: int = 404
    member_missing: int | None = None
    listing: bool = False
    outcome: Callable[[httpx.Response], int] = lambda response: response.status_code

    def expected(self, role: Role | None, which: Which) -> int:
        if self.roles is None:
            return self.ok
        if role is None:
            return 401
        if role not in self.roles:
            return 403
        if which == "own":
            return self.ok
        if which == "other":
            return self.other if role.is_tenant_bound else self.ok
        if role.is_tenant_bound and self.member_missing is not None:
            return self.member_missing
        return self.missing


def listing(roles: tuple[Role, ...], target: Target = tenant_filter) -> Entry:
    """A list filtered by ``?tenant=``: own rows; for a member, none of another's or a missing tenant's."""
    filtered = target is tenant_filter
    return Entry(roles, target, other=200, missing=200, listing=filtered)


def whole_list(roles: tuple[Role, ...]) -> Entry:
    """A list without a tenant filter (what a member sees of it is checked by the leak search)."""
    return Entry(roles, no_object(), other=200, missing=200)


V1 = "/api/v1"
MATRIX: dict[tuple[str, str], Entry] = {
    ("GET", f"{V1}/health"): Entry(None, no_object(), other=200, missing=200),
    ("GET", f"{V1}/tenants"): whole_list(EVERYONE),
    ("POST", f"{V1}/tenants"): Entry(ADMIN, new_tenant, ok=201, other=201, missing=201),
    ("PATCH", f"{V1}/tenants/{{tenant_id}}"): Entry(ADMIN, tenant_path),
    ("POST", f"{V1}/tenants/{{tenant_id}}/contacts"): Entry(ADMIN, new_contact_body, ok=201),
    ("GET", f"{V1}/tenants/{{tenant_id}}/contacts"): Entry(ADMIN, tenant_contacts),
    ("DELETE", f"{V1}/tenants/{{tenant_id}}/contacts/{{contact_id}}"): Entry(ADMIN, fresh_contact, ok=204),
    ("GET", f"{V1}/notifications"): whole_list((Role.ADMIN, Role.SOC_LEAD)),
    ("GET", f"{V1}/tenants/{{tenant_id}}/contract"): Entry(READERS, contract_path()),
    ("PUT", f"{V1}/tenants/{{tenant_id}}/contract"): Entry(ADMIN, contract_path(CONTRACT)),
    ("DELETE", f"{V1}/tenants/{{tenant_id}}/contract"): Entry(ADMIN, contract_path()),
    # An object, not a list: what a member sees of another tenant's figures is checked by the leak search.
    ("GET", f"{V1}/metrics"): Entry(READERS, tenant_filter, other=200, missing=200),
    ("GET", f"{V1}/keys"): whole_list(ADMIN),
    ("POST", f"{V1}/keys"): Entry(ADMIN, new_key_body, ok=201, missing=422),
    ("DELETE", f"{V1}/keys/{{key_id}}"): Entry(ADMIN, fresh_key, ok=204),
    ("GET", f"{V1}/users"): whole_list(ADMIN),
    ("POST", f"{V1}/users"): Entry(ADMIN, new_user_body, ok=201, missing=422),
    ("GET", f"{V1}/users/{{user_id}}"): Entry(ADMIN, fresh_user()),
    ("PATCH", f"{V1}/users/{{user_id}}"): Entry(ADMIN, fresh_user({"display_name": "Renamed"})),
    ("GET", f"{V1}/audit"): listing(AUDIT_READERS),
    ("GET", f"{V1}/audit/verify"): whole_list(AUDIT_READERS),
    ("POST", f"{V1}/alerts"): Entry(ALERT_WRITERS, new_alert, missing=422),
    ("GET", f"{V1}/alerts"): listing(READERS),
    ("GET", f"{V1}/cases"): listing(READERS),
    ("POST", f"{V1}/cases/bulk"): Entry(WORKERS, bulk_close, outcome=bulk_outcome),
    ("GET", f"{V1}/cases/{{case_id}}"): Entry(READERS, shared_case),
    ("PATCH", f"{V1}/cases/{{case_id}}"): Entry(WORKERS, fresh_case({"status": "in_progress"})),
    ("GET", f"{V1}/cases/{{case_id}}/alerts"): Entry(READERS, shared_case),
    ("GET", f"{V1}/cases/{{case_id}}/events"): Entry(READERS, shared_case),
    ("GET", f"{V1}/cases/{{case_id}}/evidence"): Entry(READERS, shared_case),
    ("GET", f"{V1}/cases/{{case_id}}/comments"): Entry(READERS, shared_case),
    ("POST", f"{V1}/cases/{{case_id}}/comments"): Entry(WORKERS, on_shared_case({"body": "seen"}), ok=201),
    ("GET", f"{V1}/cases/{{case_id}}/tasks"): Entry(READERS, shared_case),
    ("POST", f"{V1}/cases/{{case_id}}/tasks"): Entry(WORKERS, on_shared_case({"title": "call them"}), ok=201),
    ("PATCH", f"{V1}/cases/{{case_id}}/tasks/{{task_id}}"): Entry(WORKERS, fresh_task),
    ("GET", f"{V1}/cases/{{case_id}}/observables"): Entry(READERS, shared_case),
    ("POST", f"{V1}/cases/{{case_id}}/observables"): Entry(
        WORKERS, on_shared_case({"kind": "domain", "value": "evil.example"}), ok=201
    ),
    ("POST", f"{V1}/cases/{{case_id}}/merge"): Entry(WORKERS, merge),
    ("GET", f"{V1}/campaigns"): whole_list(READERS),
    ("GET", f"{V1}/campaigns/{{campaign_id}}"): Entry(READERS, shared_campaign),
    # A write naming a tenant outside the caller's scope is refused alike whether that tenant exists or not.
    ("POST", f"{V1}/sources"): Entry(SOURCE_WRITERS, new_source_body, ok=201, other=403, missing=422,
                                     member_missing=403),
    ("GET", f"{V1}/sources"): listing(SOURCE_READERS),
    ("GET", f"{V1}/sources/access"): whole_list(SOURCE_ACCESS),
    ("GET", f"{V1}/sources/audit"): listing(DEAD_LETTER_READERS),
    ("GET", f"{V1}/sources/{{source_id}}"): Entry(SOURCE_READERS, shared_source()),
    ("PATCH", f"{V1}/sources/{{source_id}}"): Entry(WORKERS, shared_source({"datasets": ["aws.cloudtrail"]})),
    ("DELETE", f"{V1}/sources/{{source_id}}"): Entry(WORKERS, fresh_source, ok=204),
    ("POST", f"{V1}/sources/{{source_id}}/token"): Entry(WORKERS, shared_source()),
    ("GET", f"{V1}/sources/{{source_id}}/health"): Entry(SOURCE_READERS, shared_source()),
    ("GET", f"{V1}/deadletters"): listing(DEAD_LETTER_READERS),
}


def openapi_operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (METHOD, path template) the published OpenAPI document lists."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item if method in methods]


@pytest.fixture
def world(soc: SocApi, settings: Settings) -> World:
    return World(soc, DeadLetterStore(settings.deadletter_dir))


def test_every_operation_in_the_openapi_document_has_a_matrix_entry(app: FastAPI) -> None:
    operations = set(openapi_operations(app))
    unlisted = sorted(operations - MATRIX.keys())
    assert not unlisted, (
        "operations without an authorization matrix entry (add one to MATRIX in this file, saying which "
        f"roles may call them and how to aim them at an own, another tenant's and a missing object): {unlisted}"
    )
    assert not sorted(MATRIX.keys() - operations), "matrix entries for operations the API no longer has"


def test_operations_declare_their_security_scheme_unless_public(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for method, path in openapi_operations(app):
        entry = MATRIX.get((method, path))
        declared = bool(paths[path][method.lower()].get("security"))
        assert entry is None or declared == (entry.roles is not None), f"{method} {path}"


def _send(client: httpx.Client, method: str, template: str, call: Call, headers: Headers) -> httpx.Response:
    return client.request(method, template.format(**call.path), params=call.params, json=call.json, headers=headers)


def _requests(world: World, entry: Entry) -> Iterator[tuple[str, Role | None, Which, Headers]]:
    yield "no key", None, "own", {}
    yield "unknown key", None, "own", {"Authorization": "Bearer not-a-key-of-this-soc"}
    for role in Role:
        for which in WHICH:
            yield role.value, role, which, world.keys[role]


def test_every_role_gets_what_the_matrix_says_from_every_operation(app: FastAPI, world: World) -> None:
    failures: list[str] = []
    requests = 0
    for method, template in openapi_operations(app):
        entry = MATRIX.get((method, template))
        if entry is None:
            failures.append(f"{method} {template}: no matrix entry")
            continue
        for who, role, which, headers in _requests(world, entry):
            expected = entry.expected(role, which)
            world.next_request(refused=not 200 <= expected < 300)
            call = entry.target(world, which)
            response = _send(world.soc.client, method, template, call, headers)
            requests += 1
            status = entry.outcome(response)
            where = f"{method} {template} as {who}, {which} object {call.path or call.params or call.json}"
            if status >= 500 or status != expected:
                failures.append(f"{where}: {response.status_code} (expected {expected}) {response.text[:200]}")
                continue
            if role is None or not role.is_tenant_bound or not 200 <= status < 300:
                continue
            if OTHER in response.text:
                failures.append(f"{where}: answer names the other tenant {OTHER!r}: {response.text[:300]}")
            if entry.listing and which == "own" and not response.json():
                failures.append(f"{where}: the member's own rows are missing")
            if entry.listing and which != "own" and response.json() != []:
                failures.append(f"{where}: rows for a tenant the member may not see: {response.text[:300]}")
    assert not failures, f"{len(failures)} of {requests} requests:\n" + "\n".join(failures)
    assert requests == len(MATRIX) * (2 + 3 * len(Role))
