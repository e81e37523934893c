"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from crm.store.db import migrate
from crm.store.metadata import metadata


def test_migrated_database_matches_the_models(engine: Engine, database_url: str) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    migrate(database_url)  # already at heads: a no-op, not an error
