"""The API as users meet it, for benchmarks: uvicorn in its own process on a fresh SQLite
database in `tmp`, with an organisation and its users created beforehand."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

from crm.store.db import migrate
from tests.factories import UserRef, make_org, make_user
from tests.servers.net import free_port, wait_for_port
from widget_api.config import Settings
from widget_api.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def api_process(
    tmp: Path, emails: list[str], *, database_url: str | None = None, workers: int = 1, env: dict[str, str] | None = None, root: Path = ROOT
) -> Iterator[tuple[str, list[UserRef], subprocess.Popen[bytes]]]:
    """(base URL, the users of `emails`, the server process). Mail servers on loopback are
    allowed: the benchmarks' Dovecot listens on 127.0.0.1. The database is a fresh SQLite
    file unless `database_url` names one; `workers` > 1: that many uvicorn processes; `env`:
    more of the server's environment (MAILWIDGET_DRAFT_CACHE_MB=0, say); `root`: the source
    tree the server runs (another checkout: a benchmark's "before")."""
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    migrate(url)
    key = Fernet.generate_key().decode()
    runtime = Runtime.build(Settings(database_url=url, secret_keys=[key], data_dir=tmp, allow_private_hosts=True))
    org = make_org(runtime, "Bench")
    users = [make_user(runtime, org, email) for email in emails]
    runtime.close()
    port = free_port()
    server_env = {**os.environ, "DATABASE_URL": url, "MAILWIDGET_SECRET_KEY": key, "MAILWIDGET_DATA_DIR": str(tmp), "MAILWIDGET_ALLOW_PRIVATE_HOSTS": "1", **(env or {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "widget_api.main:create_app", "--port", str(port), "--log-level", "warning", "--no-access-log",
         *(["--workers", str(workers)] if workers > 1 else [])],
        env={**server_env, "PYTHONPATH": str(root)}, cwd=root,
    )
    try:
        wait_for_port(port, what="uvicorn")
        yield f"http://127.0.0.1:{port}", users, server
    finally:
        server.terminate()
        server.wait(10)
