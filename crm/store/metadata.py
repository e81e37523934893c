"""Every model module, imported once, so `metadata` describes the whole schema.

A feature that adds tables adds its module here (the migration test compares this
metadata with the migrated database).
"""

from typing import Any

from crm.store import auth, automation, calendar, campaigns, custom_fields, jobs, leases, models, outbox, timeline, whitelist  # noqa: F401
from crm.store.base import Base

metadata = Base.metadata


def compared_on(dialect_name: str) -> Any:
    """Alembic's `include_object` for comparing `metadata` with a database of this dialect:
    leaves out the foreign keys that PostgreSQL enforces by triggers instead, and the search
    keys' trigram indexes (PostgreSQL with pg_trgm only: migration search_0001), and the job
    queue's tables (procrastinate's own schema, PostgreSQL only: migration queue_0001)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if reflected and compare_to is None and (name or "").startswith("procrastinate_"):
            return False
        if dialect_name == "postgresql" and type_ == "index" and reflected and (name or "").endswith("_search_trgm"):
            return False
        return not (dialect_name == "postgresql" and type_ == "foreign_key_constraint" and name in campaigns.TRIGGER_CHECKED_ON_POSTGRES)

    return include
