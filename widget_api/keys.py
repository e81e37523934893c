"""The encryption key for secrets at rest. The admin configures it (MAILWIDGET_SECRET_KEY or
MAILWIDGET_SECRET_KEY_FILE); on a first local run without one, a key file is created in the
data directory, readable by its owner only, and its path is printed (never the key)."""

from __future__ import annotations

import dataclasses
import os

from crm.services.secrets import SecretBox
from widget_api.config import Settings
from widget_api.logs import say


def ensure_secret_key(settings: Settings) -> Settings:
    if settings.secret_keys:
        return settings
    path = settings.data_dir / "secret.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(SecretBox.new_key())
        say(f"created encryption key file {path} (set MAILWIDGET_SECRET_KEY_FILE to keep using it)")
    return dataclasses.replace(settings, secret_keys=[path.read_text().strip()])
