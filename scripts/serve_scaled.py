"""`make serve-scaled`: API_PROCESSES uvicorn workers behind one port and SCAN_WORKERS
`mailwidget worker` processes on the PostgreSQL database of DATABASE_URL, supervised.

- The database is migrated once, before any process starts.
- A process that exits while nothing asked it to (killed, crashed) is started again, after
  1 s, then 2, 4 … up to 30 s if it keeps dying within a minute of its start: a worker is
  never silently gone (its interrupted jobs are retried by the queue meanwhile).
- SIGTERM or Ctrl-C: every process gets SIGTERM (workers finish their running jobs, uvicorn
  its requests), then SIGKILL after STOP_SECONDS (90) for any still running.

Its own lines go to stderr like the processes' ones: JSON log lines under
MAILWIDGET_LOG_FORMAT=json. Run by the project's interpreter (`.venv/bin/python`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from widget_api import logs

BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # a process that ran this long starts again after 1 s whatever came before


@dataclass
class Supervised:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)
        self.started, self.restart_at = time.monotonic(), None
        say(f"{self.name} started (pid {self.process.pid})")

    def check(self, now: float) -> None:
        """Start it again once its delay passed, if it exited."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return
        self.delay = 1.0 if now - self.started >= HEALTHY_AFTER else min(BACKOFF_MAX, self.delay * 2 if self.restarts else 1.0)
        self.restart_at = now + self.delay
        say(f"{self.name} (pid {self.process.pid if self.process else '?'}) exited with {code}; starting it again in {self.delay:.0f} s")


def say(line: str) -> None:
    logs.say(f"serve-scaled: {line}", "mailwidget.serve-scaled")


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        say("set DATABASE_URL=postgresql+psycopg://user:password@host/db (several processes on SQLite take turns for every write)")
        return 2
    env = os.environ
    if env.get("MAILWIDGET_LOG_FORMAT") == "json":
        logs.configure("json")
    api, workers = int(env.get("API_PROCESSES", "2")), int(env.get("SCAN_WORKERS", "2"))
    host, port, interval = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000"), env.get("SCAN_INTERVAL", "300")
    stop_seconds = float(env.get("STOP_SECONDS", "90"))
    cli = [sys.executable, "-m", "widget_api.cli"]
    if subprocess.run([*cli, "users"], stdout=subprocess.DEVNULL).returncode != 0:  # migrates, once
        say("the database could not be prepared (see above)")
        return 1
    children = [Supervised(f"worker {i + 1}", [*cli, "worker", "--interval", interval]) for i in range(workers)]
    children.append(Supervised("api", [*cli, "serve", "--host", host, "--port", port, "--workers", str(api), "--no-scan"]))

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    for child in children:
        child.start()
    while not stopping.wait(0.5):
        now = time.monotonic()
        for child in children:
            child.check(now)

    say("stopping")
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + stop_seconds
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"pid {process.pid} still running after {stop_seconds:.0f} s: killed")
            process.kill()
            process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
