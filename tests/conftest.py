"""Shared fixtures: the database (SQLite, or PostgreSQL when MAILWIDGET_TEST_DB=postgres),
the app on it, and users with tokens. Real servers (Dovecot, PostgreSQL, the fault proxy)
come from tests/servers/fixtures.py.

Every test that touches the database gets the `db` marker, so `make test` can run exactly
those again on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete

from crm.store.db import make_engine, migrate
from crm.store.metadata import metadata
from widget_api.config import Settings
from widget_api.deps import Runtime
from widget_api.main import create_app

pytest_plugins = ["tests.servers.fixtures", "tests.servers.queue_stack"]

DB_FIXTURES = {"database_url", "engine", "runtime", "client", "session", "org", "admin", "member"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.environ.get("MAILWIDGET_TEST_DB") == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(f"t_{uuid.uuid4().hex[:10]}")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def runtime(database_url: str, engine: Engine, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on the shared test database, emptied after each test."""
    settings = Settings(database_url=database_url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp_path, cors_origins=["https://mail.example.test"], allow_private_hosts=True)  # Dovecot is on 127.0.0.1
    rt = Runtime.build(settings)
    rt.engine.dispose()
    rt.engine = engine
    from crm.store.db import make_session_factory

    rt.sessions = make_session_factory(engine)
    yield rt
    rt.pool.close_all()
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture()
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture()
def session(runtime: Runtime):  # type: ignore[no-untyped-def]
    with runtime.sessions() as s:
        yield s


@pytest.fixture()
def org(runtime: Runtime):  # type: ignore[no-untyped-def]
    from tests.factories import make_org

    return make_org(runtime, "Acme 株式会社")


@pytest.fixture()
def admin(runtime: Runtime, org):  # type: ignore[no-untyped-def]
    from tests.factories import make_user

    return make_user(runtime, org, "admin@acme.example", role="admin")


@pytest.fixture()
def member(runtime: Runtime, org):  # type: ignore[no-untyped-def]
    from tests.factories import make_user

    return make_user(runtime, org, "rep@acme.example", role="member")


@contextlib.contextmanager
def serve_app(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture()
def live_server(runtime: Runtime) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port (for concurrent clients)."""
    with serve_app(create_app(runtime.settings, runtime)) as url:
        yield url
