"""The API survives a database outage: while PostgreSQL restarts every answer is 2xx/4xx or
503 with Retry-After (never a 500, never a 401 that would sign the widget out), nothing is
half-written, and the API serves again once the database is back, without a restart.
SQLite's "database is locked" after the busy timeout is the same 503."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.servers.api import api_process
from tests.servers.postgres import PostgresCluster, pg_bin
from widget_api.config import Settings
from widget_api.main import create_app
from widget_api.runtime import Runtime


def _client_loop(base: str, token: str, prefix: str, stop: threading.Event, answers: list[tuple[float, str, str, int, str | None]]) -> None:
    """Reads and writes in a loop: (time, kind, key written, status, Retry-After)."""
    headers = {"Authorization": f"Bearer {token}"}
    lead_id: int | None = None
    i = 0
    with httpx.Client(base_url=base, headers=headers, timeout=20) as c:
        while not stop.is_set():
            i += 1
            email, sender = f"{prefix}{i}@customer.example", f"{prefix}{i}@partner.example"
            calls: list[tuple[str, str, str, str, dict[str, object] | None]] = [
                ("lead", email, "POST", "/api/v1/leads", {"first_name": "T", "last_name": f"L{i}", "email": email}),
                ("leads", "", "GET", "/api/v1/leads?limit=5", None),
                ("whitelist", sender, "POST", "/api/v1/spam/whitelist", {"value": sender}),
                ("whitelist-list", "", "GET", "/api/v1/spam/whitelist", None),
            ]
            if lead_id is not None:
                calls.append(("timeline", "", "GET", f"/api/v1/leads/{lead_id}/timeline", None))
            for kind, key, method, path, payload in calls:
                r = c.request(method, path, json=payload)
                answers.append((time.monotonic(), kind, key, r.status_code, r.headers.get("Retry-After")))
                if kind == "lead" and r.status_code == 201:
                    lead_id = r.json()["lead"]["id"]
            time.sleep(0.02)


@pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed")
def test_a_postgres_restart_mid_run_is_503_with_retry_after_then_served_again(tmp_path: Path) -> None:
    with PostgresCluster() as pg:
        url = pg.create_database("outage")
        with api_process(tmp_path, ["rep@acme.example"], database_url=url, workers=2) as (base, [rep], _server):
            stop = threading.Event()
            answers: list[tuple[float, str, str, int, str | None]] = []
            clients = [threading.Thread(target=_client_loop, args=(base, rep.token, p, stop, answers)) for p in ("a", "b")]
            for t in clients:
                t.start()
            try:
                time.sleep(1.5)
                pg.halt()
                halted = time.monotonic()
                time.sleep(3)
                down = [a for a in answers if a[0] > halted + 0.5]
                pg.resume()
                resumed = time.monotonic()
                time.sleep(4)
            finally:
                stop.set()
                for t in clients:
                    t.join(30)
            bad = [a for a in answers if a[3] >= 500 and not (a[3] == 503 and a[4]) or a[3] == 401]
            assert not bad, bad[:5]
            assert down and all(a[3] == 503 for a in down), "the outage was seen as 503s"
            health = httpx.get(f"{base}/api/v1/health")
            assert health.status_code == 200
            # Served again within a few seconds of the restart, every kind of request.
            late = [a for a in answers if a[0] > resumed + 3]
            assert late and all(200 <= a[3] < 300 for a in late), [a for a in late if a[3] >= 300][:5]
        engine = create_engine(url)
        with engine.connect() as conn:
            leads = dict(conn.execute(text("SELECT email, count(*) FROM leads GROUP BY email")).all())
            senders = dict(conn.execute(text("SELECT value, count(*) FROM whitelist_entries GROUP BY value")).all())
        engine.dispose()
    for kind, stored in (("lead", leads), ("whitelist", senders)):
        for _t, k, key, status, _retry in answers:
            if k != kind:
                continue
            if 200 <= status < 300:
                assert stored.get(key) == 1, (kind, key, status)
            elif status == 503:
                assert key not in stored, (kind, key, "a 503 write left a row")


def test_a_sqlite_write_behind_a_lock_past_the_busy_timeout_is_503(tmp_path: Path) -> None:
    from crm.store.db import migrate
    from tests.factories import make_org, make_user

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    migrate(url)
    runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp_path, sqlite_busy_timeout=0.5))
    rep = make_user(runtime, make_org(runtime), "rep@acme.example")
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as client:
            holder.execute("BEGIN IMMEDIATE")  # another writer that keeps the write lock
            start = time.monotonic()
            refused = client.post("/api/v1/spam/whitelist", json={"value": "x@partner.example"}, headers=rep.headers)
            assert time.monotonic() - start < 5
            read = client.get("/api/v1/spam/whitelist", headers=rep.headers)  # a read never waits for the writer
            holder.execute("ROLLBACK")
            again = client.post("/api/v1/spam/whitelist", json={"value": "x@partner.example"}, headers=rep.headers)
    finally:
        holder.close()
        runtime.close()
    assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    assert refused.json()["type"] == "database_unavailable"
    assert read.status_code == 200 and read.json() == []
    assert again.status_code == 201, again.text


@pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed")
def test_ready_right_after_a_postgres_restart_is_not_fooled_by_a_cut_pooled_connection(tmp_path: Path) -> None:
    """A process that did not run a query during the outage still holds pooled connections the
    restart cut: its first /ready after the restart must say ready (the probe retries once
    on a fresh connection), not 503 until some other request happens to clear the pool."""
    from crm.store.db import migrate

    with PostgresCluster() as pg:
        url = pg.create_database("ready")
        migrate(url)
        runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp_path))
        try:
            with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as client:
                assert client.get("/api/v1/ready").status_code == 200  # the pool now holds a connection
                pg.halt()
                pg.resume()
                after = client.get("/api/v1/ready")
        finally:
            runtime.close()
    assert after.status_code == 200, after.text
