"""The runtime for commands that touch the database (migrated on the way)."""

from __future__ import annotations

from crm.store.db import migrate
from widget_api.config import Settings
from widget_api.keys import ensure_secret_key
from widget_api.runtime import Runtime


def cli_runtime() -> Runtime:
    settings = Settings.from_env()
    if settings.log_format == "json":  # before anything is said (the key file just below)
        from widget_api.logs import configure

        configure("json")
    settings = ensure_secret_key(settings)
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    return Runtime.build(settings)
