"""The deployment's audit log: every change (users, keys, tenants, sources, cases) with the acting user's
id, hash-chained, verifiable, and tampering with a row in the database is found."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy import Engine, delete, select, update

from case_api.audit.models import AuditEntry, AuditHead
from case_api.audit.service import entry_hash, record, verify_chain
from case_api.auth.models import Role
from case_api.db import make_session_factory
from tests.case_api.conftest import http_client

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi

MakeAlert = Callable[..., dict[str, Any]]
NG = "northgate-hospital"


def _log(soc: SocApi, **params: Any) -> list[dict[str, Any]]:
    response = soc.client.get("/api/v1/audit", params={"limit": 1000, **params}, headers=soc.admin)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def _verify(soc: SocApi) -> dict[str, Any]:
    response = soc.client.get("/api/v1/audit/verify", headers=soc.admin)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_every_administrative_change_is_logged_with_the_users_id(soc: SocApi, make_alert: MakeAlert) -> None:
    fixture_keys = len(_log(soc))  # the users and keys the fixture made
    assert fixture_keys == 6
    soc.add_tenant(NG)
    admin = soc.admin
    for _ in range(2):
        patched = soc.client.patch(f"/api/v1/tenants/{NG}", json={"asset_criticality": "high"}, headers=admin)
        assert patched.status_code == 200
    assert soc.client.post("/api/v1/users", json={"id": "ann", "role": "soc_analyst"}, headers=admin).status_code == 201
    key = soc.client.post("/api/v1/keys", json={"name": "laptop", "user_id": "ann"}, headers=admin).json()
    assert soc.client.patch("/api/v1/users/ann", json={"role": "soc_lead"}, headers=admin).status_code == 200
    source = soc.client.post("/api/v1/sources", json={"tenant_id": NG, "kind": "syslog-udp", "name": "dmz",
                                                      "networks": ["192.0.2.0/24"]}, headers=admin)
    assert source.status_code == 201, source.text
    assert soc.client.delete(f"/api/v1/keys/{key['id']}", headers=admin).status_code == 204
    assert soc.client.patch("/api/v1/users/ann", json={"disabled": True}, headers=admin).status_code == 200
    case_id = soc.ingest(make_alert(NG))["cases"][0]
    lead = soc.headers(Role.SOC_LEAD, name="lead-lucy")
    assert soc.client.patch(f"/api/v1/cases/{case_id}", json={"status": "in_progress"}, headers=lead).status_code == 200
    # refused changes leave nothing behind
    assert soc.client.post("/api/v1/tenants", json={"id": NG, "name": "again"}, headers=admin).status_code == 409
    assert soc.client.post("/api/v1/users", json={"id": "ann", "role": "admin"}, headers=admin).status_code == 409

    entries = list(reversed(_log(soc)))
    trail = [(e["action"], e["actor"], e["target_type"], e["target_id"]) for e in entries]
    assert trail[fixture_keys:] == [
        ("tenant.created", "test-admin", "tenant", NG),
        ("tenant.changed", "test-admin", "tenant", NG),  # once: the second PATCH changed nothing
        ("user.created", "test-admin", "user", "ann"),
        ("key.created", "test-admin", "key", str(key["id"])),
        ("user.changed", "test-admin", "user", "ann"),
        ("source.created", "test-admin", "source", str(source.json()["id"])),
        ("key.revoked", "test-admin", "key", str(key["id"])),
        ("user.disabled", "test-admin", "user", "ann"),
        ("case.created", "test-service", "case", str(case_id)),
        ("case.alert_added", "test-service", "case", str(case_id)),
        ("user.created", "lead-lucy", "user", "lead-lucy"),  # the test fixture issues it in the database
        ("key.created", "lead-lucy", "key", entries[-2]["target_id"]),
        ("case.status_changed", "lead-lucy", "case", str(case_id)),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["tenant.changed"]["detail"] == {"asset_criticality": {"from": "medium", "to": "high"}}
    assert by_action["user.changed"]["detail"]["role"] == {"from": "soc_analyst", "to": "soc_lead"}
    anns_key = next(e for e in entries if e["action"] == "key.created" and e["target_id"] == str(key["id"]))
    assert anns_key["detail"] == {"name": "laptop", "user_id": "ann", "prefix": key["secret"][:8], "expires_at": None}
    assert key["secret"] not in repr(entries)
    assert by_action["case.status_changed"]["tenant_id"] == NG
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert _verify(soc) == {"ok": True, "entries": len(entries), "head_seq": len(entries),
                            "head_hash": entries[-1]["hash"], "broken_id": None, "broken_seq": None, "reason": None}
    assert [e["action"] for e in _log(soc, target_type="user", target_id="ann")] == [
        "user.disabled", "user.changed", "user.created"]


def test_the_log_is_read_by_admins_and_leads_only_and_scoped_to_the_tenant(soc: SocApi) -> None:
    soc.add_tenant(NG)
    soc.add_tenant("riverside-school")
    lead = soc.headers(Role.SOC_LEAD)
    assert soc.client.get("/api/v1/audit", headers=lead).status_code == 200
    for role, tenant in ((Role.SOC_ANALYST, None), (Role.SERVICE, None), (Role.TENANT_RESPONDER, NG)):
        headers = soc.headers(role, tenant=tenant)
        assert soc.client.get("/api/v1/audit", headers=headers).status_code == 403
        assert soc.client.get("/api/v1/audit/verify", headers=headers).status_code == 403
    only_ng = _log(soc, tenant=NG)
    assert only_ng and {e["tenant_id"] for e in only_ng} == {NG}


def test_a_row_changed_in_the_database_is_found_with_its_id(soc: SocApi, clean_db: Engine) -> None:
    for n in range(5):
        soc.add_tenant(f"tenant-{n}")
    entries = list(reversed(_log(soc)))
    victim = entries[4]
    with clean_db.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.id == victim["id"])
                           .values(detail={"name": "someone else"}))
    result = _verify(soc)
    assert (result["ok"], result["broken_id"], result["broken_seq"]) == (False, victim["id"], victim["seq"])
    assert "changed" in result["reason"] and result["entries"] == victim["seq"] - 1

    # Rewriting the row's hash to match moves the break to the next entry, whose prev_hash no longer matches.
    rehashed = entry_hash(**{**{k: victim[k] for k in ("seq", "actor", "action", "target_type", "target_id",
                                                      "tenant_id", "prev_hash")},
                             "at": datetime.fromisoformat(victim["at"]), "detail": {"name": "someone else"}})
    with clean_db.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.id == victim["id"]).values(hash=rehashed))
    result = _verify(soc)
    assert (result["ok"], result["broken_id"]) == (False, entries[5]["id"])
    assert "prev_hash" in result["reason"]


def test_a_deleted_row_and_a_cut_tail_are_found(soc: SocApi, clean_db: Engine) -> None:
    for n in range(4):
        soc.add_tenant(f"tenant-{n}")
    entries = list(reversed(_log(soc)))
    with clean_db.begin() as connection:
        connection.execute(delete(AuditEntry).where(AuditEntry.id == entries[-1]["id"]))
    result = _verify(soc)
    assert not result["ok"] and "removed" in result["reason"] and result["broken_seq"] == entries[-1]["seq"]

    with clean_db.begin() as connection:  # the head rewritten to match: now only the gap in the middle is left
        connection.execute(delete(AuditEntry).where(AuditEntry.id == entries[2]["id"]))
        connection.execute(update(AuditHead).values(seq=entries[-2]["seq"], hash=entries[-2]["hash"]))
    result = _verify(soc)
    assert (result["ok"], result["broken_id"]) == (False, entries[3]["id"])
    assert "missing" in result["reason"]


def test_concurrent_changes_chain_without_a_fork(soc: SocApi, app: FastAPI, make_alert: MakeAlert) -> None:
    soc.add_tenant(NG)
    case_ids = [soc.ingest(make_alert(NG, user=f"user-{n}"))["cases"][0] for n in range(4)]
    before = len(_log(soc))

    def change(n: int) -> int:
        with http_client(app) as http:
            if n % 2:
                return http.post("/api/v1/tenants", json={"id": f"tenant-{n:02d}", "name": "t"},
                                 headers=soc.admin).status_code
            return http.post(f"/api/v1/cases/{case_ids[n % 4]}/comments", json={"body": f"note {n}"},
                             headers=soc.analyst).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(change, range(30)))
    assert set(statuses) == {201}
    entries = _log(soc)
    assert len(entries) == before + 30
    assert _verify(soc)["ok"] is True


def test_entries_committed_together_carry_the_hashes_the_verifier_computes(clean_db: Engine) -> None:
    """On PostgreSQL the server hashes the entries from the canonical JSON made in Python (audit.service): each
    stored hash must be entry_hash's, with non-ASCII text, escapes, a nested key named like the chained fields,
    a tenant and none, several entries in one commit and the chain's first entry."""
    details: list[dict[str, Any]] = [
        {"name": "Zürich — 東京 ☃", "prev_hash": "x", "seq": 9},
        {"nested": {"b": [1, 2.5, None, True], "a": "quote \" back \\ tab \t \x01"}},
        {},
    ]
    factory = make_session_factory(clean_db)
    for batch in range(3):
        with factory() as session:
            for n, detail in enumerate(details[: batch + 1]):
                record(session, actor="user-1", action="test.appended", target_type="thing", target_id=f"{batch}-{n}",
                       tenant_id=NG if n % 2 else None, detail=detail)
            session.commit()
    with factory() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [entry.seq for entry in entries] == [1, 2, 3, 4, 5, 6]
        assert [entry.detail for entry in entries] == [details[0], *details[:2], *details]
        for entry in entries:
            assert entry.hash == entry_hash(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
                                            target_type=entry.target_type, target_id=entry.target_id,
                                            tenant_id=entry.tenant_id, detail=entry.detail, prev_hash=entry.prev_hash)
        head = session.get(AuditHead, 1)
        assert head is not None and (head.seq, head.hash) == (6, entries[-1].hash)
        assert verify_chain(session=session).ok is True


def test_a_change_rolled_back_leaves_no_entry_behind(clean_db: Engine) -> None:
    factory = make_session_factory(clean_db)
    with factory() as session:
        session.execute(select(AuditHead))  # the transaction the entry belongs to
        record(session, actor="user-1", action="test.dropped", target_type="thing", target_id="1")
        session.rollback()
        record(session, actor="user-1", action="test.kept", target_type="thing", target_id="2")
        session.commit()
    with factory() as session:
        assert [entry.action for entry in session.scalars(select(AuditEntry))] == ["test.kept"]
        assert verify_chain(session=session).ok is True


def test_member_contacts_added_and_removed_are_logged_without_the_webhook_secret(soc: SocApi) -> None:
    soc.add_tenant(NG)
    url = f"/api/v1/tenants/{NG}/contacts"
    hook = soc.client.post(url, json={"channel": "webhook", "address": "https://hooks.ng.example/soc"},
                           headers=soc.admin)
    assert hook.status_code == 201, hook.text
    assert soc.client.delete(f"{url}/{hook.json()['id']}", headers=soc.admin).status_code == 204
    entries = _log(soc, target_type="contact")
    assert [(e["action"], e["actor"], e["tenant_id"], e["detail"]) for e in entries] == [
        ("tenant.contact_removed", "test-admin", NG, {"channel": "webhook", "address": "https://hooks.ng.example/soc"}),
        ("tenant.contact_added", "test-admin", NG, {"channel": "webhook", "address": "https://hooks.ng.example/soc"}),
    ]
    assert hook.json()["secret"] not in repr(_log(soc))
    assert _verify(soc)["ok"] is True
