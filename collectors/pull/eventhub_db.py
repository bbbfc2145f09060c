"""Event Hub partition ownership and checkpoints in a SQL database (SQLite or PostgreSQL), so several pullers
share one event hub's partitions: azure-eventhub's load balancer claims partitions through the store's
`claim_ownership`, and each puller receives only the partitions it holds.

The store implements the SDK's `CheckpointStore` (`list_ownership`, `claim_ownership`, `update_checkpoint`,
`list_checkpoints`) with the Azure Blob store's rule for claims: a claim without an etag succeeds only for a
partition nobody has claimed yet (an INSERT, refused by the primary key if another puller got there first);
a claim with an etag succeeds only if the row still has that etag (a conditional UPDATE), and gets a new
one. Both are single statements, so two pullers racing for a partition cannot both win on either database.
`last_modified_time` is the claiming puller's clock (epoch seconds), which the SDK compares with its
ownership timeout: pullers sharing a store need synchronised clocks, as with any lease.

The tables are the pullers' own (`pull_eventhub_ownership`, `pull_eventhub_checkpoints`), created on first
use; the case API never reads them. `SOC_PULL_DATABASE_URL` in the puller's environment selects the store
(e.g. `postgresql+psycopg://soc@db/citysoc`); without it each puller keeps its own file
(`collectors.pull.eventhub.FileCheckpointStore`) and holds every partition.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from azure.eventhub import CheckpointStore
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

metadata = MetaData()

_KEY_COLUMNS = ("namespace", "eventhub", "consumer_group", "partition_id")


def _key_columns() -> list[Column[str]]:
    return [Column(name, String(256), primary_key=True) for name in _KEY_COLUMNS]


ownership = Table(
    "pull_eventhub_ownership", metadata, *_key_columns(),
    Column("owner_id", String(256), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("last_modified_time", Float, nullable=False),
)
checkpoints = Table(
    "pull_eventhub_checkpoints", metadata, *_key_columns(),
    Column("offset", String(64), nullable=True),
    Column("sequence_number", BigInteger, nullable=True),
)


def _key(entry: dict[str, Any]) -> dict[str, str]:
    return {"namespace": str(entry["fully_qualified_namespace"]), "eventhub": str(entry["eventhub_name"]),
            "consumer_group": str(entry["consumer_group"]), "partition_id": str(entry["partition_id"])}


def _entry(row: Any, *fields: str) -> dict[str, Any]:
    return {"fully_qualified_namespace": row.namespace, "eventhub_name": row.eventhub,
            "consumer_group": row.consumer_group, "partition_id": row.partition_id,
            **{name: getattr(row, name) for name in fields}}


class DatabaseCheckpointStore(CheckpointStore):
    """The SDK's checkpoint store on SQLAlchemy (see the module doc). `close` disposes of the engine."""

    def __init__(self, url: str | Engine) -> None:
        self.engine = create_engine(url) if isinstance(url, str) else url
        metadata.create_all(self.engine, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                       **kwargs: Any) -> Iterable[dict[str, Any]]:
        where = self._where(ownership, fully_qualified_namespace, eventhub_name, consumer_group)
        with self.engine.connect() as connection:
            return [_entry(row, "owner_id", "etag", "last_modified_time")
                    for row in connection.execute(select(ownership).where(where))]

    def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> Iterable[dict[str, Any]]:
        claimed = []
        for claim in ownership_list:
            key = _key(claim)
            values = {"owner_id": str(claim.get("owner_id") or ""), "etag": uuid.uuid4().hex,
                      "last_modified_time": time.time()}
            with self.engine.begin() as connection:
                if claim.get("etag"):
                    statement: Any = update(ownership).where(
                        and_(*(ownership.c[name] == value for name, value in key.items()),
                             ownership.c.etag == claim["etag"])).values(**values)
                else:  # claimed by another puller since this one listed: the key is taken, nothing inserted
                    statement = self._insert(ownership).values(**key, **values).on_conflict_do_nothing()
                # RETURNING, not rowcount: psycopg reports no rowcount for an INSERT ... ON CONFLICT
                won = connection.execute(statement.returning(ownership.c.partition_id)).first() is not None
            if won:
                claimed.append({**claim, **values})
        return claimed

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        key = _key(checkpoint)
        offset = checkpoint.get("offset")
        values = {"offset": None if offset is None else str(offset),
                  "sequence_number": checkpoint.get("sequence_number")}
        statement = self._insert(checkpoints).values(**key, **values).on_conflict_do_update(
            index_elements=list(_KEY_COLUMNS), set_=values)
        with self.engine.begin() as connection:
            connection.execute(statement)

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                         **kwargs: Any) -> Iterable[dict[str, Any]]:
        where = self._where(checkpoints, fully_qualified_namespace, eventhub_name, consumer_group)
        with self.engine.connect() as connection:
            return [_entry(row, "offset", "sequence_number")
                    for row in connection.execute(select(checkpoints).where(where))]

    def _insert(self, table: Table) -> Any:
        """INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL both have them)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(table)
        raise ValueError(f"the Event Hub checkpoint store runs on SQLite or PostgreSQL, not {self.engine.dialect.name}")

    @staticmethod
    def _where(table: Table, namespace: str, eventhub: str, group: str) -> Any:
        return and_(table.c.namespace == namespace, table.c.eventhub == eventhub, table.c.consumer_group == group)
