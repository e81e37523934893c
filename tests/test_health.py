"""`/ready`: 200 with each check when the database answers and the loops beat; 503 with
Retry-After and the failed check otherwise, without a token and without secrets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from widget_api import heartbeats


@pytest.fixture
def no_loops() -> Iterator[None]:
    yield
    for loop in list(heartbeats.status()):
        heartbeats.forget(loop)


class TestReady:
    def test_ready_when_the_database_answers_and_the_loop_beat(self, client: TestClient, no_loops: None) -> None:
        heartbeats.beat("rescue-worker", 60)
        response = client.get("/api/v1/ready")
        assert response.status_code == 200, response.text
        checks = response.json()["checks"]
        assert checks["database"]["ok"] is True
        assert checks["workers"]["rescue-worker"]["ok"] is True

    def test_a_stale_heartbeat_is_503_with_retry_after(self, client: TestClient, no_loops: None, monkeypatch: pytest.MonkeyPatch) -> None:
        stale = heartbeats.Beat(time.monotonic() - heartbeats.Beat(0, 1).max_age - 1, 1)  # last beat just too long ago
        monkeypatch.setitem(heartbeats._beats, "rescue-worker", stale)
        response = client.get("/api/v1/ready")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        out = response.json()
        assert out["type"] == "not_ready" and "rescue-worker" in out["detail"]
        assert out["checks"]["workers"]["rescue-worker"]["ok"] is False and out["checks"]["database"]["ok"] is True

    def test_an_unreachable_database_is_503_naming_no_url(self, client: TestClient, runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'secret-name.db'}"
        monkeypatch.setattr(runtime, "engine", create_engine(url))
        response = client.get("/api/v1/ready")
        assert response.status_code == 503 and response.headers["Retry-After"]
        out = response.json()
        assert out["checks"]["database"] == {"ok": False, "error": "OperationalError", "ms": out["checks"]["database"]["ms"]}
        assert "secret-name" not in response.text and "missing-dir" not in response.text

    def test_a_hanging_database_answers_within_the_timeout(self, client: TestClient, runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        release = threading.Event()

        class Hanging:
            def connect(self):  # type: ignore[no-untyped-def]
                release.wait(10)
                raise RuntimeError("released")

        monkeypatch.setattr(runtime, "engine", Hanging())
        monkeypatch.setattr("widget_api.routes.health.DB_TIMEOUT", 0.2)
        start = time.perf_counter()
        response = client.get("/api/v1/ready")
        release.set()
        assert response.status_code == 503 and time.perf_counter() - start < 2
        assert response.json()["checks"]["database"]["error"] == "timeout"


class TestProbePaths:
    def test_health_and_ready_also_answer_at_the_root_without_a_token(self, client: TestClient, no_loops: None, monkeypatch: pytest.MonkeyPatch) -> None:
        heartbeats.beat("rescue-worker", 60)
        assert client.get("/health").json() == client.get("/api/v1/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["database"]["ok"] is True
        stale = heartbeats.Beat(time.monotonic() - heartbeats.Beat(0, 1).max_age - 1, 1)
        monkeypatch.setitem(heartbeats._beats, "rescue-worker", stale)
        not_ready = client.get("/ready")  # the same check, not a copy that always says ok
        assert not_ready.status_code == 503 and not_ready.json()["type"] == "not_ready"
        paths = client.get("/openapi.json").json()["paths"]
        assert "/api/v1/ready" in paths and "/ready" not in paths and "/health" not in paths


class TestWorkerLoop:
    def test_the_loop_beats_after_a_pass_and_keeps_going_when_one_fails(self, runtime, no_loops: None, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        from widget_api.cli import spam

        passes: list[int] = []
        stop = threading.Event()

        def scan(_runtime):  # type: ignore[no-untyped-def]
            passes.append(1)
            if len(passes) == 1:
                raise RuntimeError("database restarting")
            stop.set()
            return (0, 0, 0)

        monkeypatch.setattr(spam, "scan_all", scan)
        seen: list[dict[str, object]] = []
        monkeypatch.setattr(spam.heartbeats, "forget", lambda loop: seen.append(heartbeats.status()))
        spam.worker_loop(runtime, 0.01, stop, name="test-loop")
        assert len(passes) == 2  # the failed pass did not end the loop
        assert seen[0]["test-loop"]["ok"] is True
