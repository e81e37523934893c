"""The background runner of import jobs (crm.services.import_jobs), a few threads per process.

A runner claims a job under a lease, scans the stored file once (encoding, row count, and in
all-or-nothing mode every row's check, so nothing is written when one is rejected), then
imports it a batch at a time: each batch's leads, rejected rows and the job's committed row
offset go in one transaction, which also renews the lease. Other requests wait for at most
one batch (a fraction of a second), never for the whole import. A runner that dies leaves its
job `running`; once the lease expired, any runner (this process after a restart, another
one) claims it and resumes after the last committed row, so no row is imported twice.

The loops survive any failure of one pass (logged, counted, retried after a pause) and beat
`widget_api.heartbeats` at every batch, so `/ready` sees a loop that died or hangs.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from crm.domain.errors import DomainError, InvalidInput
from crm.services import csv_import, import_jobs, rules
from crm.services.csv_import import ImportReport
from crm.store.db import refresh_statistics
from widget_api import heartbeats, metrics

if TYPE_CHECKING:
    from widget_api.runtime import Runtime

log = logging.getLogger(__name__)
UPLOADS = "imports"  # under the data directory
SCAN_BEAT = 5000  # rows between lease renewals while a file is scanned
ERROR_CHUNK = 1000  # rejected rows stored at a time during the scan


class Stopping(Exception):
    """The process is shutting down: the job goes back to the queue between two batches."""


def upload_path(data_dir: Path) -> tuple[Path, str]:
    """A new file for an upload: (absolute path, path relative to the data directory)."""
    relative = f"{UPLOADS}/{uuid.uuid4().hex}.csv"
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, relative


def run_job(runtime: Runtime, job: import_jobs.Claimed, owner: str, lease: float, beat: Callable[[], None] = lambda: None, stop: threading.Event | None = None) -> str:
    """Run a claimed job to its end; returns its final status ("done", "failed", or
    "queued" when stopped or lost)."""
    path = runtime.settings.data_dir / job.path
    ended = False
    try:
        if not path.is_file():
            raise InvalidInput("the uploaded file is gone", code="upload_gone")
        with runtime.sessions.begin() as s:
            importer = csv_import.Importer(s, job.principal, job.on_duplicate)
        if job.rows_total is None and not _scan(runtime, job, owner, lease, importer, path, beat):
            ended = True
            return "done"  # all or nothing, and a row was rejected: nothing imported
        with runtime.sessions.begin() as s:
            encoding = import_jobs.stored_encoding(s, job.id) or "utf-8"
        done = job.rows_done
        with csv_import.open_text(path, encoding) as text:
            for batch in csv_import.batches(islice(csv_import.rows(text, job.mapping), done, None)):
                if stop is not None and stop.is_set():
                    raise Stopping
                report = ImportReport()
                with runtime.sessions.begin() as s:
                    created = importer.batch(s, batch, report)
                    # The workflow rules on "created by import" queue their mails in the
                    # batch's own transaction: a batch redone after a crash mails nobody twice
                    # (the outbox is idempotent per (rule, lead)) and nobody is missed.
                    rules.on_leads_created(s, job.principal, created, "csv_import")
                    done += len(batch)
                    import_jobs.record_batch(s, job.id, owner, lease, done, report)
                beat()
        with runtime.sessions.begin() as s:
            refresh_statistics(s)
            import_jobs.finish(s, job.id, owner, committed=True)
        ended = True
        return "done"
    except DomainError as exc:  # the file's fault: a clear error on the job, no retry
        with runtime.sessions.begin() as s:
            import_jobs.fail(s, job.id, owner, code=exc.code, detail=exc.detail)
        ended = True
        return "failed"
    except import_jobs.LeaseLost:
        log.warning("import %s: lease lost to another runner; stopped", job.id)
        return "queued"
    except Stopping:
        with runtime.sessions.begin() as s:
            import_jobs.requeue(s, job.id, owner)
        return "queued"
    except Exception:
        metrics.TASK_FAILURES.labels("import").inc()
        log.exception("import %s failed; it will be tried again", job.id)
        with runtime.sessions.begin() as s:
            ended = import_jobs.release(s, job.id, owner) == "failed"
        return "failed" if ended else "queued"
    finally:
        if ended:
            path.unlink(missing_ok=True)  # its rows are in the database now


def _scan(runtime: Runtime, job: import_jobs.Claimed, owner: str, lease: float, importer: csv_import.Importer, path: Path, beat: Callable[[], None]) -> bool:
    """Encoding and row count (a CSV the module cannot read fails here, before any row is
    written); in all-or-nothing mode also every row's check. False when the job ended
    because a row was rejected."""
    encoding = csv_import.file_encoding(path)
    total = rejected_count = 0
    rejected: list[tuple[int, str]] = []
    with runtime.sessions.begin() as s:
        import_jobs.clear_errors(s, job.id, owner, lease)  # of an earlier scan that died
    with csv_import.open_text(path, encoding) as text:
        for line, raw in csv_import.rows(text, job.mapping):
            total += 1
            if job.all_or_nothing and (reason := importer.check(raw)[2]):
                rejected.append((line, reason))
                rejected_count += 1
            if total % SCAN_BEAT == 0 or len(rejected) >= ERROR_CHUNK:
                with runtime.sessions.begin() as s:
                    import_jobs.renew(s, job.id, owner, lease)
                    import_jobs.add_errors(s, job.id, rejected)
                rejected.clear()
                beat()
    with runtime.sessions.begin() as s:
        import_jobs.add_errors(s, job.id, rejected)
        import_jobs.set_scan(s, job.id, owner, lease, encoding=encoding, rows_total=total)
        if rejected_count:
            import_jobs.finish(s, job.id, owner, committed=False, rejected=rejected_count)
            return False
    return True


class ImportWorker:
    """`threads` loops that claim and run import jobs; started on the first wake() (an
    upload) or by start() (`serve`, `worker`: jobs left by a previous process resume)."""

    def __init__(self, runtime: Runtime, threads: int = 2, poll: float = 2.0, lease: float = 60.0, *, in_subprocess: bool = False) -> None:
        self.runtime, self.threads, self.poll, self.lease = runtime, threads, poll, lease
        self.in_subprocess = in_subprocess
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: list[threading.Thread] = []
        self._lock = threading.Lock()

    def owner(self, name: str) -> str:
        return f"{socket.gethostname()[:30]}:{os.getpid()}:{name}:{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        with self._lock:
            if any(t.is_alive() for t in self._running):
                return
            self._stop = threading.Event()
            self._running = [threading.Thread(target=self._loop, args=(f"import-worker-{i}", self._stop), name=f"import-worker-{i}", daemon=True) for i in range(self.threads)]
            for thread in self._running:
                thread.start()

    def wake(self) -> None:
        """A job was queued: with the job queue (PostgreSQL), a `run_imports` job is deferred
        (a worker process runs it; if the queue cannot be reached, the queue's minutely
        `run_imports` finds the job); else this process's runner threads start."""
        if self.runtime.settings.job_queue:
            from widget_api import queue

            try:
                queue.defer(self.runtime.settings, "run_imports", queueing_lock="run_imports")
            except Exception:  # noqa: BLE001 - found by the periodic pass instead
                log.warning("import: the run_imports job could not be deferred; the minutely pass runs it")
            return
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._stop.set()
            self._wake.set()
            threads, self._running = self._running, []
        for thread in threads:
            thread.join(timeout)

    def run_once(self, name: str, stop: threading.Event | None = None) -> bool:
        """Claim one job and run it; False when none was waiting."""
        owner = self.owner(name)
        with self.runtime.sessions.begin() as s:
            job = import_jobs.claim(s, owner, self.lease)
        if job is None:
            return False
        log.info("import %s: claimed by %s (attempt %d, from row %d)", job.id, owner, job.attempts, job.rows_done)
        run_job(self.runtime, job, owner, self.lease, beat=lambda: heartbeats.beat(name, self.poll), stop=stop)
        return True

    def run_child(self, name: str, stop: threading.Event) -> bool:
        """When a job is waiting, run `mailwidget import-jobs` (the same runner, in a process
        of its own) until it exits; False when none was waiting. A CPU-bound import in a
        thread of the API process would hold the GIL that every request needs: the requests
        would wait up to the switch interval at each step. This thread only waits."""
        with self.runtime.read_sessions() as s:
            if not import_jobs.has_claimable(s):
                return False
        settings = self.runtime.settings
        env = {
            **os.environ, "DATABASE_URL": settings.database_url, "MAILWIDGET_DATA_DIR": str(settings.data_dir),
            "MAILWIDGET_IMPORT_LEASE": str(self.lease), "MAILWIDGET_SECRET_KEY": ",".join(settings.secret_keys), "MAILWIDGET_LOG_FORMAT": settings.log_format,
        }
        # Niced: on a busy machine the API's requests get the CPU before the import.
        child = subprocess.Popen([sys.executable, "-m", "widget_api.cli", "import-jobs", "--nice", "10"], env=env, stdout=subprocess.DEVNULL)
        try:
            while child.poll() is None:
                if stop.wait(self.poll):
                    child.terminate()  # the child puts its job back in the queue (SIGTERM)
                    break
                heartbeats.beat(name, self.poll)
        finally:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()  # its job's lease expires and another runner resumes it
                child.wait()
        if child.returncode:
            log.warning("%s: the import runner exited with %s", name, child.returncode)
        return True

    def _loop(self, name: str, stop: threading.Event) -> None:
        heartbeats.beat(name, self.poll)
        pause = self.poll
        try:
            while not stop.is_set():
                try:
                    ran = self.run_child(name, stop) if self.in_subprocess else self.run_once(name, stop)
                except Exception:
                    metrics.TASK_FAILURES.labels(name).inc()
                    log.exception("%s: the pass failed; next one in %g s", name, pause)
                    stop.wait(pause)
                    pause = min(pause * 2, 60.0)
                    continue
                pause = self.poll
                heartbeats.beat(name, self.poll)
                if not ran:
                    self._wake.wait(self.poll)
                    self._wake.clear()
        finally:
            heartbeats.forget(name)
