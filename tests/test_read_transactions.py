"""Reads never wait behind a writer, writers queue instead of failing (crm.store.db): on
SQLite a read-only session begins deferred (WAL: its own snapshot) and a writing one
BEGIN IMMEDIATE with a busy timeout."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import insert

from crm.store.db import ReadOnlySession
from crm.store.models import Lead


def hold_write_lock(runtime, org_id: int, seconds: float, holding: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """A writer that inserts a lead and keeps its transaction (the write lock) open."""
    with runtime.sessions.begin() as s:
        s.execute(insert(Lead).values(organisation_id=org_id, last_name="held", source="test", status="open"))
        holding.set()
        time.sleep(seconds)


class TestReadTransactions:
    def test_a_read_answers_during_a_long_write_transaction(self, runtime, live_server: str, member) -> None:  # type: ignore[no-untyped-def]
        paths = ("/api/v1/leads", "/api/v1/custom-fields", "/api/v1/ready")
        for path in paths:  # warm: the first answers build schemas and open connections
            httpx.get(f"{live_server}{path}", headers=member.headers, timeout=30)
        holding = threading.Event()
        writer = threading.Thread(target=hold_write_lock, args=(runtime, member.organisation_id, 5.0, holding))
        writer.start()
        try:
            assert holding.wait(10)
            for path in paths:
                started = time.perf_counter()
                response = httpx.get(f"{live_server}{path}", headers=member.headers, timeout=30)
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, (path, response.text)
                assert elapsed < 1.5, (path, elapsed)  # on BEGIN IMMEDIATE: the rest of the writer's 5 s
            assert writer.is_alive()  # the reads above happened while the lock was held
        finally:
            writer.join()

    def test_concurrent_writers_queue_and_none_fails(self, runtime, live_server: str, member) -> None:  # type: ignore[no-untyped-def]
        holding = threading.Event()
        writer = threading.Thread(target=hold_write_lock, args=(runtime, member.organisation_id, 1.0, holding))
        writer.start()
        assert holding.wait(10)

        def create(i: int) -> int:
            body = {"last_name": f"並行{i}", "email": f"w{i}@writers{i}.example"}
            return httpx.post(f"{live_server}/api/v1/leads", json=body, headers=member.headers, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(create, range(16)))
        writer.join()
        assert statuses == [201] * 16
        listed = httpx.get(f"{live_server}/api/v1/leads", params={"limit": 100}, headers=member.headers, timeout=30).json()
        assert len(listed["items"]) == 17

    def test_a_write_through_a_read_only_session_is_refused(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        with runtime.read_sessions() as s, pytest.raises(ReadOnlySession):
            s.execute(insert(Lead).values(organisation_id=member.organisation_id, last_name="x", source="test", status="open"))


class TestReadSessionsGiveBackTheirConnection:
    def test_read_requests_leave_no_connection_checked_out(self, client, runtime, member) -> None:  # type: ignore[no-untyped-def]
        """widget_api.deps.get_read_session closes its session outside the thread pool when no
        statement ran and in it when one did: either way the connection goes back to the
        pool, or the 30 connections of the pool would run out after 30 requests."""
        for _ in range(40):
            assert client.get("/api/v1/tokens", headers=member.headers).status_code == 200
            assert client.get("/api/v1/tokens", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert runtime.engine.pool.checkedout() == 0
