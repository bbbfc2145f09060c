"""The tenant scope helpers: which rows a scope lets a query return, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection, Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from case_api.cases.models import Case
from case_api.cases.service import get_case
from case_api.db import make_session_factory
from case_api.errors import NotFoundError
from case_api.scope import in_scope, scoped
from case_api.sources.models import Source
from case_api.tenants.models import Tenant
from tests.case_api.conftest import BASE_TIME

NG = "northgate-hospital"
RS = "riverside-school"


@pytest.fixture
def db_session(clean_db: Engine) -> Iterator[Session]:
    """Two tenants with one source each."""
    with make_session_factory(clean_db)() as session:
        session.add_all([Tenant(id=NG, name="Northgate"), Tenant(id=RS, name="Riverside")])
        session.flush()
        session.add_all(
            [
                Source(tenant_id=NG, kind="syslog", name="auth", parser="syslog", datasets=["system.auth"]),
                Source(tenant_id=RS, kind="syslog", name="auth", parser="syslog", datasets=["system.auth"]),
            ]
        )
        session.commit()
        yield session


def _visible_tenants(session: Session, scope: Collection[str] | None, tenant_id: str | None) -> list[str]:
    query = scoped(select(Source.tenant_id), Source.tenant_id, scope=scope, tenant_id=tenant_id)
    return sorted(session.scalars(query))


@pytest.mark.parametrize(
    ("scope", "tenant_id", "expected"),
    [
        pytest.param(None, None, [NG, RS], id="no-scope-sees-every-tenant"),
        pytest.param(None, RS, [RS], id="no-scope-narrowed-to-one-tenant"),
        pytest.param({NG}, None, [NG], id="scope-keeps-its-tenants"),
        pytest.param({NG}, NG, [NG], id="explicit-tenant-inside-scope"),
        pytest.param({NG}, RS, [], id="explicit-tenant-outside-scope-yields-nothing"),
        pytest.param({NG}, "no-such-tenant", [], id="unknown-tenant-yields-the-same-nothing"),
        pytest.param(frozenset(), None, [], id="empty-scope-sees-nothing"),
        pytest.param(frozenset(), NG, [], id="empty-scope-with-explicit-tenant-sees-nothing"),
    ],
)
def test_scoped_returns_only_the_rows_the_scope_allows(
    db_session: Session, scope: Collection[str] | None, tenant_id: str | None, expected: list[str]
) -> None:
    assert _visible_tenants(db_session, scope, tenant_id) == expected


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [(None, True), ({RS}, True), ({NG}, False), (frozenset(), False)],
)
def test_in_scope_agrees_with_what_scoped_returns(
    db_session: Session, scope: Collection[str] | None, allowed: bool
) -> None:
    assert in_scope(scope, RS) is allowed
    assert (_visible_tenants(db_session, scope, RS) == [RS]) is allowed


def test_a_case_outside_the_scope_is_reported_exactly_like_a_missing_one(db_session: Session) -> None:
    case = Case(tenant_id=RS, title="t", group_key="user.name=bob", first_seen=BASE_TIME, last_seen=BASE_TIME)
    db_session.add(case)
    db_session.commit()
    assert get_case(session=db_session, case_id=case.id, scope=None).tenant_id == RS
    assert get_case(session=db_session, case_id=case.id, scope={RS}).tenant_id == RS

    with pytest.raises(NotFoundError) as hidden:
        get_case(session=db_session, case_id=case.id, scope={NG})
    assert hidden.value.message == f"case {case.id} not found"
    assert hidden.value.status_code == 404

    db_session.delete(case)
    db_session.commit()
    with pytest.raises(NotFoundError) as missing:
        get_case(session=db_session, case_id=case.id, scope={NG})
    assert missing.value.message == hidden.value.message
