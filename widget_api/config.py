"""Settings, read from the environment once at start-up and passed down (lower layers
never read the environment themselves)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("var")


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_keys: list[str] = field(repr=False)
    cors_origins: list[str] = field(default_factory=list)
    imap_ca_file: str | None = None
    pool_size: int = 64
    data_dir: Path = DEFAULT_DATA_DIR

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """DATABASE_URL (default: SQLite in ./var), MAILWIDGET_SECRET_KEY (comma-separated Fernet
        keys, newest first) or MAILWIDGET_SECRET_KEY_FILE, MAILWIDGET_CORS_ORIGINS
        (comma-separated), MAILWIDGET_IMAP_CA_FILE (an extra CA bundle for IMAP TLS),
        MAILWIDGET_POOL_SIZE, MAILWIDGET_DATA_DIR."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("MAILWIDGET_DATA_DIR", str(DEFAULT_DATA_DIR)))
        url = env.get("DATABASE_URL") or f"sqlite:///{(data_dir / 'mailwidget.db').resolve()}"
        keys = env.get("MAILWIDGET_SECRET_KEY", "")
        key_file = env.get("MAILWIDGET_SECRET_KEY_FILE")
        if not keys and key_file and Path(key_file).exists():
            keys = Path(key_file).read_text().strip()
        return cls(
            database_url=url,
            secret_keys=[k.strip() for k in keys.split(",") if k.strip()],
            cors_origins=[o.strip() for o in env.get("MAILWIDGET_CORS_ORIGINS", "").split(",") if o.strip()],
            imap_ca_file=env.get("MAILWIDGET_IMAP_CA_FILE") or None,
            pool_size=int(env.get("MAILWIDGET_POOL_SIZE", "64")),
            data_dir=data_dir,
        )
