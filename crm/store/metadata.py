"""Every model module, imported once, so `metadata` describes the whole schema.

A feature that adds tables adds its module here (the migration test compares this
metadata with the migrated database).
"""

from typing import Any

from crm.store import auth, calendar, campaigns, custom_fields, leases, models, outbox, whitelist  # noqa: F401
from crm.store.base import Base

metadata = Base.metadata


def compared_on(dialect_name: str) -> Any:
    """Alembic's `include_object` for comparing `metadata` with a database of this dialect:
    leaves out the foreign keys that PostgreSQL enforces by triggers instead."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (dialect_name == "postgresql" and type_ == "foreign_key_constraint" and name in campaigns.TRIGGER_CHECKED_ON_POSTGRES)

    return include
