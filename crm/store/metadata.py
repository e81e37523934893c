"""Every model module, imported once, so `metadata` describes the whole schema.

A feature that adds tables adds its module here (the migration test compares this
metadata with the migrated database).
"""

from crm.store import calendar, campaigns, custom_fields, models, whitelist  # noqa: F401
from crm.store.base import Base

metadata = Base.metadata
