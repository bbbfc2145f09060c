"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from case_api.db import downgrade_database, upgrade_database
from case_api.models import metadata

TABLES = {"tenants", "api_keys", "cases", "case_events", "alerts", "sources"}


def test_migrations_create_every_table_at_head(clean_db: Engine) -> None:
    tables = set(inspect(clean_db).get_table_names())
    assert tables >= TABLES
    with clean_db.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"


def test_migrated_schema_matches_the_models(clean_db: Engine) -> None:
    with clean_db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_open_case_index_is_partial_and_unique(clean_db: Engine) -> None:
    indexes = {ix["name"]: ix for ix in inspect(clean_db).get_indexes("cases")}
    assert indexes["uq_cases_open_group"]["unique"]


def test_downgrade_to_base_and_upgrade_again(clean_db: Engine) -> None:
    downgrade_database(clean_db, "base")
    assert not TABLES & set(inspect(clean_db).get_table_names())
    upgrade_database(clean_db)
    assert set(inspect(clean_db).get_table_names()) >= TABLES
