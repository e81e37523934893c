"""The processes of a scaled deployment for the job queue's tests (widget_api.queue): an API
(`serve --workers 2`) and `mailwidget worker` processes on a fresh PostgreSQL database, each
process's stderr kept to read what it did. The `stack` fixture always kills what it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from crm.store.db import migrate
from tests.servers.net import free_port, wait_for_port
from tests.servers.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[2]


def conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Stack:
    """The processes of one scaled deployment on a fresh database."""

    url: str
    env: dict[str, str]
    port: int = 0
    token: str = ""
    api: subprocess.Popen[str] | None = None
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: dict[int, list[str]] = field(default_factory=dict)  # pid → stderr lines

    def start_api(self) -> None:
        self.port = free_port()
        self.api = subprocess.Popen(
            [sys.executable, "-m", "widget_api.cli", "serve", "--port", str(self.port), "--workers", "2", "--no-scan"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.api.stdout is not None
        self.token = next(line.rsplit(" ", 1)[1].strip() for line in self.api.stdout if "Admin API token" in line)
        threading.Thread(target=lambda: [None for _ in self.api.stdout], daemon=True).start()  # type: ignore[union-attr]
        wait_for_port(self.port, what="serve --workers 2", timeout=60, alive=lambda: self.api is not None and self.api.poll() is None)

    def start_worker(self, *, interval: float = 2, send_interval: float = 5, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return self._spawn(["worker", "--interval", str(interval), "--send-interval", str(send_interval)], env)

    def start_serve(self, *, send_interval: float = 5, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """A single `serve` (the queue's worker in a thread beside the API), logged as a worker."""
        self.port = free_port()
        return self._spawn(["serve", "--port", str(self.port), "--send-interval", str(send_interval)], env)

    def _spawn(self, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "widget_api.cli", *args], cwd=ROOT, env={**self.env, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        lines: list[str] = []
        self.logs[worker.pid] = lines

        def read() -> None:
            assert worker.stderr is not None
            for line in worker.stderr:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        self.workers.append(worker)
        return worker

    def worker_id(self, worker: subprocess.Popen[str], timeout: float = 30) -> int:
        """The queue's id of the worker (it prints it once registered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.logs[worker.pid]:
                if found := re.search(r"registered as queue worker (\d+)", line):
                    return int(found[1])
            assert worker.poll() is None, self.log(worker)
            time.sleep(0.05)
        raise AssertionError("worker did not register: " + self.log(worker))

    def log(self, worker: subprocess.Popen[str]) -> str:
        return "".join(self.logs[worker.pid])[-3000:]

    def wait_for_log(self, worker: subprocess.Popen[str], text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.logs[worker.pid]):
            assert time.monotonic() < deadline, f"{text!r} not logged: " + self.log(worker)
            time.sleep(0.05)

    def running_job(self, task: str, worker_id: int, timeout: float = 20) -> int:
        """The id of a job of `task` the worker runs (waits for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = %s AND task_name = %s", worker_id, task)
            if rows:
                return int(rows[0][0])
            time.sleep(0.01)
        raise AssertionError(f"no {task} job ran on worker {worker_id}")

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(conninfo(self.url), connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def stop_all(self) -> None:
        for p in [*self.workers, self.api]:
            if p is not None and p.poll() is None:
                p.kill()
        for p in [*self.workers, self.api]:
            if p is not None:
                p.wait(10)


@pytest.fixture()
def stack(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Stack]:
    if not isinstance(postgres_cluster, PostgresCluster):
        pytest.skip("needs the throwaway cluster (it is restarted)")
    url = postgres_cluster.create_database()
    migrate(url)
    env = {
        **os.environ, "DATABASE_URL": url, "MAILWIDGET_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
        "MAILWIDGET_ALLOW_PRIVATE_HOSTS": "1",  # Dovecot on 127.0.0.1
        "MAILWIDGET_QUEUE_HEARTBEAT": "1",  # a worker missing 3 s of beats is gone
        "MAILWIDGET_SCAN_LEASE_SECONDS": "3",  # a killed scan's lease frees within 3 s
        "MAILWIDGET_QUEUE_SHUTDOWN_SECONDS": "10",
    }
    for key in ("MAILWIDGET_SECRET_KEY", "MAILWIDGET_SECRET_KEY_FILE", "MAILWIDGET_JOB_QUEUE"):
        env.pop(key, None)
    s = Stack(url, env)
    try:
        yield s
    finally:
        s.stop_all()
