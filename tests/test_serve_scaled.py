"""`make serve-scaled` (scripts/serve_scaled.py) as an operator runs it: on PostgreSQL, the
API and the workers up behind one port; a worker killed with SIGKILL is started again (and an
API process, by uvicorn's manager); SIGTERM stops every process it started; under MAILWIDGET_LOG_FORMAT=json every line on stderr is a
JSON object. SQLite is refused with one line and exit 2.

These tests need PostgreSQL (the `postgres_cluster` fixture skips without its binaries)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.servers.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "serve_scaled.py"


def until(what: str, check: Callable[[], object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def workers_of(supervisor: psutil.Process) -> list[psutil.Process]:
    """The `mailwidget worker` processes the supervisor started (its direct children)."""
    out = []
    for child in supervisor.children():
        try:
            if "worker" in child.cmdline():
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def api_processes(supervisor: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (children of `mailwidget serve --workers N`)."""
    out = []
    for child in supervisor.children(recursive=True):
        try:
            if "multiprocessing" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def test_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "DATABASE_URL=postgresql" in done.stderr


def test_a_killed_worker_is_started_again_and_sigterm_stops_everything(postgres_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": postgres_cluster.create_database(), "MAILWIDGET_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
           "API_PROCESSES": "2", "SCAN_WORKERS": "2", "PORT": str(port), "STOP_SECONDS": "30", "MAILWIDGET_LOG_FORMAT": "json"}  # fmt: skip
    env.pop("MAILWIDGET_SECRET_KEY", None)
    env.pop("MAILWIDGET_SECRET_KEY_FILE", None)
    started = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(started.stderr.readline, "")) if started.stderr else None, daemon=True)
    reader.start()
    supervisor = psutil.Process(started.pid)
    everything: set[int] = set()
    try:
        wait_for_port(port, what="serve-scaled", timeout=90, alive=lambda: started.poll() is None)
        until("/ready", lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200)
        first = until("two workers", lambda: len(workers_of(supervisor)) == 2 and workers_of(supervisor))
        assert isinstance(first, list)
        everything |= {p.pid for p in supervisor.children(recursive=True)}
        victim = first[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        again = until("the killed worker started again", lambda: len(workers_of(supervisor)) == 2 and workers_of(supervisor), timeout=30)
        assert isinstance(again, list) and victim.pid not in {p.pid for p in again} and first[1].pid in {p.pid for p in again}
        assert until("the restart logged", lambda: any(f"(pid {victim.pid}) exited with -9; starting it again" in line for line in log), timeout=5)
        # An API process killed: uvicorn's own manager starts another, the port keeps answering.
        apis = until("two API processes", lambda: len(api_processes(supervisor)) == 2 and api_processes(supervisor))
        assert isinstance(apis, list)
        apis[0].send_signal(signal.SIGKILL)
        apis[0].wait(10)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).json() == {"status": "ok"}
        until("the API process replaced", lambda: len(api_processes(supervisor)) == 2 and apis[0].pid not in {p.pid for p in api_processes(supervisor)}, timeout=30)
        everything |= {p.pid for p in supervisor.children(recursive=True)}
        started.send_signal(signal.SIGTERM)
        assert started.wait(60) == 0
        assert not [pid for pid in everything if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        reader.join(10)
        assert not any("starting it again" in line for line in log[-3:])  # stopping is not dying: nothing restarted
        # One JSON object per line, from the supervisor and from every process it started.
        not_json = [line for line in log if not line.startswith("{")]
        assert not not_json, not_json
        lines = [json.loads(line) for line in log]
        assert {"mailwidget.serve-scaled", "mailwidget.worker", "uvicorn.error"} <= {line["logger"] for line in lines}
    finally:
        if started.poll() is None:
            started.kill()
        for pid in everything:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
