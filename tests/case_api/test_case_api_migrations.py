"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, DateTime, Engine, String, column, insert, inspect, select, table, text
from sqlalchemy.exc import IntegrityError

from case_api.cases.models import Case
from case_api.cases.service import queue_query
from case_api.db import alembic_config, downgrade_database, make_session_factory, upgrade_database
from case_api.models import metadata
from case_api.sources.models import Source

TABLES = {"tenants", "api_keys", "cases", "case_events", "alerts", "alert_entities", "campaigns", "campaign_cases",
          "sources", "source_events"}


def test_migrations_create_every_table_at_head(clean_db: Engine) -> None:
    tables = set(inspect(clean_db).get_table_names())
    assert tables >= TABLES
    with clean_db.connect() as connection:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head


#: Indexes on expressions, which alembic cannot compare (SQLite does not reflect them, PostgreSQL reflects
#: them with casts added): test_the_open_queue_is_read_off_its_indexes checks that they serve their query.
EXPRESSION_INDEXES = {"ix_cases_open_queue", "ix_cases_open_queue_tenant"}


def _compared(_object: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


def test_migrated_schema_matches_the_models(clean_db: Engine) -> None:
    with clean_db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _compared})
        differences = compare_metadata(context, metadata)
    assert differences == []


@pytest.mark.parametrize(
    ("scope", "index"),
    [(None, "ix_cases_open_queue"), (frozenset({"northgate-hospital"}), "ix_cases_open_queue_tenant")],
)
def test_the_open_queue_is_read_off_its_indexes(clean_db: Engine, scope: frozenset[str] | None, index: str) -> None:
    """The migrated indexes state the very expressions the queue query orders and filters by."""
    query = queue_query(scope=scope, open_only=True).limit(50)
    sql = str(query.compile(dialect=clean_db.dialect, compile_kwargs={"literal_binds": True}))
    with clean_db.connect() as connection:
        if clean_db.dialect.name == "postgresql":
            # An empty table is cheaper to sort than to walk an index: ask whether the index can serve at all.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            connection.execute(text("SET LOCAL enable_sort = off"))
            plan = "\n".join(connection.execute(text(f"EXPLAIN {sql}")).scalars())
        else:
            plan = "\n".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert f" {index}" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan


def test_a_group_may_have_several_open_cases(clean_db: Engine) -> None:
    indexes = {ix["name"]: ix for ix in inspect(clean_db).get_indexes("cases")}
    assert "uq_cases_open_group" not in indexes
    assert not indexes["ix_cases_tenant_group"]["unique"]


def test_downgrade_to_base_and_upgrade_again(clean_db: Engine) -> None:
    downgrade_database(clean_db, "base")
    assert not TABLES & set(inspect(clean_db).get_table_names())
    upgrade_database(clean_db)
    assert set(inspect(clean_db).get_table_names()) >= TABLES


def test_sources_registered_before_source_access_keep_working_after_the_upgrade(clean_db: Engine) -> None:
    downgrade_database(clean_db, "0002")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    tenants = table("tenants", column("id", String), column("name", String), column("created_at", DateTime))
    sources = table("sources", column("tenant_id", String), column("kind", String), column("name", String),
                    column("datasets", JSON), column("created_at", DateTime))
    with clean_db.begin() as connection:
        connection.execute(insert(tenants).values(id="northgate-hospital", name="Northgate", created_at=at))
        connection.execute(insert(sources), [
            {"tenant_id": "northgate-hospital", "kind": kind, "name": name, "datasets": datasets, "created_at": at}
            for kind, name, datasets in [("syslog", "web-01", ["system.auth"]),
                                         ("cloudtrail", "org trail", ["aws.cloudtrail"]),
                                         ("aws.cloudtrail", "old trail", ["aws.cloudtrail"])]])

    upgrade_database(clean_db)

    with make_session_factory(clean_db)() as session:
        rows = session.scalars(select(Source).order_by(Source.id)).all()
        assert [(s.name, s.kind, s.parser, s.networks, s.cloud_accounts, s.token_sha256, s.transports)
                for s in rows] == [
            ("web-01", "syslog", "syslog", [], [], None, []),
            ("org trail", "cloudtrail", "aws.cloudtrail", [], [], None, []),
            ("old trail", "aws.cloudtrail", "aws.cloudtrail", [], [], None, []),
        ]
        assert rows[0].created_at == at
        # the new columns' rules hold for rows added afterwards
        session.add_all([Source(tenant_id="northgate-hospital", kind="http", name=f"push {n}", parser="syslog",
                                datasets=[], token_sha256="a" * 64) for n in (1, 2)])
        with pytest.raises(IntegrityError):
            session.commit()

    downgrade_database(clean_db, "0002")  # and back: the rows stay, without the new columns
    with clean_db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sources")).scalar() == 3
    upgrade_database(clean_db)


def test_alerts_stored_before_incidents_get_their_entities_and_last_event_time(clean_db: Engine) -> None:
    downgrade_database(clean_db, "0003")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    tenants = table("tenants", column("id", String), column("name", String), column("created_at", DateTime))
    cases = table("cases", *(column(name) for name in (
        "id", "tenant_id", "title", "status", "severity", "group_key", "alert_count", "first_seen", "last_seen",
        "created_at", "updated_at")))
    alerts = table("alerts", *(column(name) for name in (
        "id", "tenant_id", "case_id", "rule_id", "rule_title", "rule_level", "timestamp", "group_key", "received_at")),
        *(column(name, JSON) for name in ("rule_tags", "event_ids", "document", "entities")))
    with clean_db.begin() as connection:
        connection.execute(insert(tenants).values(id="northgate-hospital", name="Northgate", created_at=at))
        connection.execute(insert(cases).values(
            id=7, tenant_id="northgate-hospital", title="t", status="new", severity="high", group_key="user.name=bob",
            alert_count=1, first_seen=at, last_seen=at, created_at=at, updated_at=at))
        connection.execute(insert(alerts).values(
            id="a1", tenant_id="northgate-hospital", case_id=7, rule_id="r1", rule_title="t", rule_level="high",
            rule_tags=[], timestamp=at, event_ids=[], group_key="user.name=bob", document={}, received_at=at,
            entities={"user.name": ["bob"], "host.name": ["web-01"]}))

    upgrade_database(clean_db)

    with clean_db.connect() as connection:
        assert connection.execute(text("SELECT last_seen FROM alerts")).scalar() is not None
        rows = connection.execute(
            text("SELECT field, value, grouping, risk FROM alert_entities ORDER BY field")).all()
    assert [(f, v, bool(g), r) for f, v, g, r in rows] == [
        ("host.name", "web-01", False, 0), ("rule.id", "r1", False, 0), ("user.name", "bob", True, 75)]


def test_cases_opened_before_sla_clocks_get_stop_and_due_times_from_their_audit_trail(clean_db: Engine) -> None:
    downgrade_database(clean_db, "0008")
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    tenants = table("tenants", column("id", String), column("name", String), column("created_at", DateTime))
    cases = table("cases", *(column(name) for name in (
        "id", "tenant_id", "title", "status", "severity", "group_key", "alert_count", "first_seen", "last_seen",
        "created_at", "updated_at", "closed_at")))
    events = table("case_events", column("case_id"), column("at"), column("actor"), column("action"),
                   column("detail", JSON))
    with clean_db.begin() as connection:
        connection.execute(insert(tenants).values(id="northgate-hospital", name="Northgate", created_at=at))
        connection.execute(insert(cases), [
            {"id": n, "tenant_id": "northgate-hospital", "title": "t", "status": status, "severity": severity,
             "group_key": f"k{n}", "alert_count": 1, "first_seen": at, "last_seen": at, "created_at": at,
             "updated_at": at, "closed_at": closed}
            for n, status, severity, closed in [(1, "new", "critical", None), (2, "in_progress", "high", None),
                                                 (3, "closed", "medium", at + 90 * minute)]])
        connection.execute(insert(events), [
            {"case_id": case_id, "at": at + offset * minute, "actor": "ana", "action": action, "detail": detail}
            for case_id, offset, action, detail in [
                (1, 0, "created", {}), (2, 5, "assigned", {"from": None, "to": "ana"}),
                (2, 20, "status_changed", {"from": "new", "to": "in_progress"}),
                (3, 30, "status_changed", {"from": "new", "to": "resolved"}),
                (3, 40, "status_changed", {"from": "resolved", "to": "in_progress"}),
                (3, 90, "status_changed", {"from": "in_progress", "to": "closed", "resolution": "benign"}),
            ]])

    upgrade_database(clean_db)

    with make_session_factory(clean_db)() as session:
        found = {c.id: c for c in session.scalars(select(Case))}
    assert (found[1].acknowledged_at, found[1].triaged_at, found[1].resolved_at) == (None, None, None)
    assert found[1].sla_due_at == found[1].acknowledge_due_at == at + 15 * minute
    assert (found[2].acknowledged_at, found[2].triaged_at) == (at + 5 * minute, at + 20 * minute)
    assert found[2].sla_due_at == found[2].resolve_due_at == at + timedelta(days=1)
    assert (found[3].triaged_at, found[3].resolved_at, found[3].sla_due_at) == (at + 30 * minute, at + 90 * minute,
                                                                                 None)
    assert found[3].sla_pauses == []
