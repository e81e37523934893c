"""The job queue on PostgreSQL: procrastinate (tables and LISTEN/NOTIFY in the same
database, no broker to run; schema by migration queue_0001). The tasks below wrap the plain
functions of widget_api.tasks, which the embedded mode (SQLite, no queue) calls in-process.

What runs as what:

- `scan_mailbox(account_id)` on queue "scans", `lock=mailbox:{id}` (jobs of one mailbox run
  one after the other whichever worker takes them) and `queueing_lock=mailbox:{id}` (at most
  one waiting: a slow mailbox does not pile up passes). `schedule_scans` (periodic, deferred
  once per tick however many workers run) defers one per connected mailbox; IMAP IDLE
  (widget_api.idle_watch) defers one when a server signals new mail.
- `expand_series(user_id)` on "calendar": the series a scan changed, off the scan's path.
- `run_imports` on "imports" (deferred by an upload, each minute, and when a running
  import's lease ends: the jobs a dead runner left) and `send_outbox` on "outbox" (periodic): the queue only decides who runs
  them; their exactly-once guarantees are the import batches' committed offset and the
  outbox's three-commit send.
- `retry_stalled_jobs` (periodic): a worker SIGKILLed mid-job leaves the job `doing` and
  stops beating; once its heartbeat is older than `stalled_after`, the job goes back to
  `todo` (another worker runs it). `prune_jobs` (hourly) deletes finished jobs after a week.
- SIGTERM: the running jobs finish within `queue_shutdown_seconds` while the worker keeps
  beating; a synchronous job still running then is abandoned (the process exits at once,
  its row left `doing`) and retried elsewhere as a SIGKILLed worker's would be.

Failures are counted in `mailwidget_background_task_failures{task}` and retried with
backoff: `expand_series` by procrastinate's retry (`Backoff`, a RetryStrategy); a scan by
deferring its next attempt (see `Backoff` for why); the periodic tasks at their next period.
A failed attempt stays `failed` in procrastinate_jobs for a week (`/ready` counts them):
never silently gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate import exceptions as queue_errors
from procrastinate import jobs as queue_jobs
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.worker import Worker
from sqlalchemy.engine import make_url

from crm.store.base import utcnow
from widget_api import metrics, tasks
from widget_api.logs import say

if TYPE_CHECKING:
    from procrastinate.job_context import JobContext

    from widget_api.config import Settings
    from widget_api.runtime import Runtime

log = logging.getLogger(__name__)

SCANS, CALENDAR, IMPORTS, OUTBOX, MAINTENANCE = "scans", "calendar", "imports", "outbox", "maintenance"
QUEUES = (SCANS, CALENDAR, IMPORTS, OUTBOX, MAINTENANCE)
KEEP_FINISHED_HOURS = 7 * 24
STOP_MARGIN = 2.0  # seconds past the grace period for procrastinate to cancel and unregister


def conninfo(database_url: str) -> str:
    """psycopg's form of SQLAlchemy's `postgresql+psycopg://…` URL (same host, user, options)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


SCAN_ATTEMPTS = 5  # a failing scan is tried again after 2, 4, 8, 16 s
BUSY_DELAY, BUSY_TRIES = 2, 60  # lease held elsewhere: again every 2 s, for two minutes


class Backoff(BaseRetryStrategy):
    """procrastinate's retry (the same job row back to `todo`) after 2, 4, 8, 16 s, then the
    job stays `failed`. For tasks without a queueing lock only: a job that has one is retried
    by deferring its next attempt (`_scan_again`), as putting the row back would violate the
    lock whenever the next job of the same key is already waiting (and leave the row `doing`)."""

    def __init__(self, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts

    def get_retry_decision(self, *, exception: BaseException, job: queue_jobs.Job) -> RetryDecision | None:
        if job.attempts + 1 >= self.max_attempts:
            return None
        return RetryDecision(retry_in={"seconds": 2 ** (job.attempts + 1)})


app = procrastinate.App(connector=procrastinate.PsycopgConnector())
RETRY = Backoff()


def _runtime(context: JobContext) -> Runtime:
    return context.additional_context["runtime"]  # type: ignore[no-any-return]


def counted(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Count each failed attempt of a task in Prometheus before procrastinate records it (the
    worker logs the exception with the job)."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:
                metrics.TASK_FAILURES.labels(name).inc()
                raise

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except Exception:
                metrics.TASK_FAILURES.labels(name).inc()
                raise

        wrapper = run_async if asyncio.iscoroutinefunction(func) else run
        wrapper.__name__, wrapper.__doc__, wrapper.__module__ = func.__name__, func.__doc__, func.__module__
        return wrapper

    return wrap


def _mailbox_lock(account_id: int) -> str:
    return f"mailbox:{account_id}"


@app.task(name="scan_mailbox", queue=SCANS, pass_context=True)
@counted("mailbox-scan")
def scan_mailbox(context: JobContext, account_id: int, trigger: str = "poll", attempt: int = 0, busy: int = 0) -> dict[str, int]:
    """A failure is recorded on this job (`failed`, counted) and the next attempt deferred
    with backoff; the mailbox's lease held by a scan outside the queue (one the user asked
    for through the API, or the attempt of a worker that was SIGKILLed or cut off, whose
    lease expires within `scan_lease_seconds`) defers the same attempt shortly, as that scan
    may have started before the change this job was deferred for."""
    runtime = _runtime(context)
    try:
        result = tasks.scan_mailbox(runtime, account_id, trigger=trigger, expand=False)
    except Exception:
        if attempt + 1 < SCAN_ATTEMPTS:
            _scan_again(context, account_id, trigger, attempt + 1, 0, delay=2 ** (attempt + 1))
        raise
    if result is None:
        if busy < BUSY_TRIES:
            _scan_again(context, account_id, trigger, attempt, busy + 1, delay=BUSY_DELAY)
        return {"busy": 1}
    principal = tasks.principal_of_account(runtime, account_id)
    if principal is not None and result.applied:
        defer_soon(context, "expand_series", lock=f"series:{principal.user_id}", user_id=principal.user_id)
    return {"moved": result.moved, "kept": result.kept, "applied": result.applied, "logged": result.logged}


def _scan_again(context: JobContext, account_id: int, trigger: str, attempt: int, busy: int, *, delay: int) -> None:
    """The next attempt, unless a scan of that mailbox is already waiting (it does the same)."""
    lock = _mailbox_lock(account_id)
    defer_soon(context, "scan_mailbox", lock=lock, queueing_lock=lock, schedule_in={"seconds": delay}, account_id=account_id, trigger=trigger, attempt=attempt, busy=busy)


@app.task(name="expand_series", queue=CALENDAR, pass_context=True, retry=RETRY)
@counted("expand-series")
def expand_series(context: JobContext, user_id: int) -> int:
    return tasks.expand_series(_runtime(context), user_id)


# The periodic tasks are not retried: the next period runs them again anyway.
@app.task(name="run_imports", queue=IMPORTS, pass_context=True)
@counted("import")
def run_imports(context: JobContext, timestamp: int | None = None) -> int:
    """Every claimable import, then another pass deferred for when the first live lease of a
    running import ends: the job put back after its worker was SIGKILLed mid-import finds
    the import still leased to the dead runner (`import_lease` outlasts `stalled_after`),
    and the next minutely pass may come a minute later. That pass has a queueing lock of its
    own, so an upload's pass is never held behind it; while a live runner elsewhere renews
    its lease, it is one short job per lease period."""
    stop: threading.Event = context.additional_context["stop"]
    runtime = _runtime(context)
    ran = tasks.run_imports(runtime, f"import-job-{context.job.id}", stop)
    ends = tasks.next_import_lease_end(runtime)
    if ends is not None and not stop.is_set():
        delay = max(1, math.ceil((ends - utcnow()).total_seconds()) + 1)
        defer_soon(context, "run_imports", queueing_lock="run_imports:lease-end", schedule_in={"seconds": delay})
    return ran


@app.task(name="send_outbox", queue=OUTBOX, pass_context=True)
@counted("outbox-sender")
def send_outbox(context: JobContext, timestamp: int | None = None) -> dict[str, int]:
    result = tasks.send_outbox(_runtime(context))
    return {"sent": result.sent, "retried": result.retried, "failed": result.failed, "recovered": result.recovered}


@app.task(name="schedule_scans", queue=MAINTENANCE, pass_context=True, queueing_lock="schedule_scans")
@counted("schedule-scans")
async def schedule_scans(context: JobContext, timestamp: int) -> int:
    """One scan job per connected mailbox (those already waiting keep their place)."""
    ids = await asyncio.to_thread(tasks.connected_mailboxes, _runtime(context))
    deferred = 0
    for account_id in ids:
        deferred += await defer_scan_async(context.app, account_id, "poll")
    return deferred


@app.task(name="retry_stalled_jobs", queue=MAINTENANCE, pass_context=True, queueing_lock="retry_stalled_jobs")
@counted("retry-stalled")
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Jobs left `doing` by a worker whose heartbeat stopped go back to `todo`. If another job
    with the same queueing lock is already waiting (the next periodic scan of that mailbox),
    that one is cancelled: the retried job does the same work and holds the mailbox's lease."""
    manager = context.app.job_manager
    stalled_after: float = context.additional_context["stalled_after"]
    retried = 0
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        if job.id is None or job.id == context.job.id:
            continue
        if job.queueing_lock:
            for waiting in await manager.list_jobs_async(queueing_lock=job.queueing_lock, status="todo"):
                if waiting.id is not None:
                    await manager.cancel_job_by_id_async(waiting.id)
        try:
            await manager.retry_job(job)
        except queue_errors.ConnectorException:
            log.warning("stalled job %s (%s) could not be put back; next pass tries again", job.id, job.task_name)
            continue
        retried += 1
        metrics.STALLED_RETRIED.labels(job.task_name).inc()
        log.warning("job %s (%s) of a stopped worker put back in the queue (attempt %d)", job.id, job.task_name, job.attempts + 1)
    return retried


@app.task(name="prune_jobs", queue=MAINTENANCE, pass_context=True, queueing_lock="prune_jobs")
async def prune_jobs(context: JobContext, timestamp: int) -> None:
    """Finished jobs (failed ones too) are kept a week for inspection, then deleted."""
    await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_FINISHED_HOURS, include_failed=True, include_cancelled=True, include_aborted=True)


def every(seconds: float) -> str:
    """A cron string for a period: seconds (6th field) below a minute, else minutes."""
    s = max(1, round(seconds))
    if s < 60:
        step = next(d for d in range(s, 61) if 60 % d == 0)  # the divisor of 60 at or above it
        return f"* * * * * */{step}"
    m = max(1, round(s / 60))
    step = next(d for d in range(m, 61) if 60 % d == 0)
    return f"*/{step} * * * *" if step < 60 else "0 * * * *"


_periodic_done = False


def register_periodic(scan_interval: float, send_interval: float, stalled_check: float) -> None:
    """The schedules, once per process (their periods come from the command line)."""
    global _periodic_done
    if _periodic_done:
        return
    _periodic_done = True
    app.periodic(cron=every(scan_interval), periodic_id="scans")(schedule_scans)
    app.periodic(cron=every(stalled_check), periodic_id="stalled")(retry_stalled_jobs)
    app.periodic(cron=every(send_interval), periodic_id="outbox", queueing_lock="send_outbox")(send_outbox)
    app.periodic(cron="* * * * *", periodic_id="imports", queueing_lock="run_imports")(run_imports)
    app.periodic(cron="17 * * * *", periodic_id="prune")(prune_jobs)


# --- deferring -----------------------------------------------------------------------

_worker_loop: asyncio.AbstractEventLoop | None = None  # set while this process runs a worker
_sync_apps: dict[str, procrastinate.App] = {}
_sync_lock = threading.Lock()


async def defer_scan_async(queue_app: procrastinate.App, account_id: int, trigger: str) -> int:
    """1 when a scan job was deferred, 0 when one was already waiting for that mailbox."""
    lock = _mailbox_lock(account_id)
    try:
        await queue_app.configure_task("scan_mailbox", lock=lock, queueing_lock=lock).defer_async(account_id=account_id, trigger=trigger)
    except queue_errors.AlreadyEnqueued:
        return 0
    return 1


def defer(settings: Settings, task_name: str, *, lock: str | None = None, queueing_lock: str | None = None, **kwargs: Any) -> bool:
    """Defer a job from any thread of any process; False when one with the same queueing lock
    is already waiting. In a worker process through its event loop (its connections); in an
    API process through a small synchronous pool of its own."""
    loop = _worker_loop
    if loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_defer_async(app, task_name, {"lock": lock, "queueing_lock": queueing_lock}, kwargs), loop)
        try:
            return future.result(timeout=10)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
    return _defer_sync(settings, task_name, {"lock": lock, "queueing_lock": queueing_lock}, kwargs)


def defer_soon(
    context: JobContext, task_name: str, *, lock: str | None = None, queueing_lock: str | None = None, schedule_in: dict[str, int] | None = None, **kwargs: Any
) -> bool:
    """From a running (synchronous) task: through the worker's loop."""
    loop = _worker_loop
    assert loop is not None
    options = {"lock": lock, "queueing_lock": queueing_lock, "schedule_in": schedule_in}
    return asyncio.run_coroutine_threadsafe(_defer_async(context.app, task_name, options, kwargs), loop).result(timeout=10)


async def _defer_async(queue_app: procrastinate.App, task_name: str, options: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    try:
        await queue_app.configure_task(task_name, **options).defer_async(**kwargs)
    except queue_errors.AlreadyEnqueued:
        return False
    return True


def _defer_sync(settings: Settings, task_name: str, options: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    url = conninfo(settings.database_url)
    with _sync_lock:
        sync_app = _sync_apps.get(url)  # one per database (a test process meets several)
        if sync_app is None:
            # At most two connections, opened on first use and closed when idle: deferring is
            # rare in an API process (an upload), and its requests keep their own pool.
            sync_app = _sync_apps[url] = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url, min_size=0, max_size=2, max_idle=60))
            sync_app.open()
    # That app knows the tasks by name only (they are registered on `app`, whose connector is
    # the worker's): without its queue named, a job would land in procrastinate's "default"
    # queue, which no worker reads.
    try:
        sync_app.configure_task(task_name, queue=app.tasks[task_name].queue, **options).defer(**kwargs)
    except queue_errors.AlreadyEnqueued:
        return False
    return True


def defer_scan(settings: Settings, account_id: int, trigger: str) -> bool:
    lock = _mailbox_lock(account_id)
    return defer(settings, "scan_mailbox", lock=lock, queueing_lock=lock, account_id=account_id, trigger=trigger)


# --- the worker ------------------------------------------------------------------------


class QueueWorker:
    """A procrastinate worker for this process's Runtime, run until `stop`, reconnecting with
    backoff when the database goes away (a restart: every side task of procrastinate's
    worker fails then, and it stops). `stop` finishes the jobs running (at most
    `settings.queue_shutdown_seconds`), takes no new one, and returns."""

    def __init__(self, runtime: Runtime, stop: threading.Event, *, scan_interval: float, send_interval: float, name: str = "worker") -> None:
        settings = runtime.settings
        self.runtime, self.stop, self.name = runtime, stop, name
        self.concurrency = max(1, settings.queue_concurrency)
        self.heartbeat = settings.queue_heartbeat
        self.stalled_after = 3 * settings.queue_heartbeat  # three beats missed: the worker is gone
        self.grace = settings.queue_shutdown_seconds
        self.connector = procrastinate.PsycopgConnector(conninfo=conninfo(settings.database_url), min_size=1, max_size=self.concurrency + 2, timeout=10)
        app.connector = app.job_manager.connector = self.connector  # what replace_connector does, for the process's life
        register_periodic(scan_interval, send_interval, stalled_check=max(1.0, self.heartbeat))
        self.abandoned = False  # a job still ran when the grace period ended

    def run(self) -> None:
        """Blocks until stopped (in the main thread of `mailwidget worker`, or a thread of `serve`)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run())
        finally:
            if not self.abandoned:  # else the loop's cleanup would wait for the abandoned job
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

    async def _run(self) -> None:
        global _worker_loop
        _worker_loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while not self.stop.is_set():
                started = asyncio.get_running_loop().time()
                try:
                    await self._one_connection()
                except Exception as exc:  # noqa: BLE001 - the database went away: reconnect
                    log.warning("%s: the queue's connection failed (%s); reconnecting", self.name, type(exc).__name__, exc_info=True)
                if self.stop.is_set():
                    break
                attempt = 0 if asyncio.get_running_loop().time() - started > 60 else attempt + 1
                from widget_api.idle_watch import backoff

                await self._sleep(backoff(attempt, base=0.5, cap=30.0))
        finally:
            _worker_loop = None

    async def _sleep(self, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.stop.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)

    async def _one_connection(self) -> None:
        async with app.open_async():
            worker = Worker(
                app,
                queues=list(QUEUES),
                name=self.name,
                concurrency=self.concurrency,
                install_signal_handlers=False,  # ours set `stop` (the IDLE threads see it too)
                shutdown_graceful_timeout=self.grace,
                delete_jobs="successful",  # a scan a minute per mailbox: only failures are worth keeping
                additional_context={"runtime": self.runtime, "stop": self.stop, "stalled_after": self.stalled_after},
                update_heartbeat_interval=self.heartbeat,
                stalled_worker_timeout=self.stalled_after,
                fetch_job_polling_interval=2.0,
            )
            running = asyncio.create_task(worker.run(), name="procrastinate-worker")
            announced = False
            while not running.done() and not self.stop.is_set():
                await asyncio.wait({running}, timeout=0.2)
                if not announced and worker.worker_id is not None:
                    announced = True  # the id its jobs carry in procrastinate_jobs.worker_id
                    say(f"{self.name}: registered as queue worker {worker.worker_id}", "mailwidget.worker")
            if not running.done():
                worker.stop()  # no new job; the running ones finish (up to the grace period)
                if not await self._drain(worker, running):
                    # A synchronous job ignores the abort: leave it. Its row stays `doing`
                    # and this worker beats no more (the process exits now), so another
                    # worker retries it once `stalled_after` has passed.
                    self.abandoned = True
                    log.warning("%s: a job still ran %g s after the stop; left to be retried elsewhere", self.name, self.grace)
                    return
            running.result()  # the worker's own failure (the database went away) propagates

    async def _drain(self, worker: Worker, running: asyncio.Task[None]) -> bool:
        """Wait for the stopped worker's running jobs (the grace period, then procrastinate
        cancels the asynchronous ones), beating meanwhile: procrastinate stops its heartbeat
        as soon as it is stopped, and a job whose worker missed `stalled_after` of beats is
        put back by another worker's `retry_stalled_jobs` while this one still runs it. False
        when a job still runs at the end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace + STOP_MARGIN
        while not running.done() and loop.time() < deadline:
            if worker.worker_id is not None:  # None once procrastinate unregistered it
                try:
                    await app.job_manager.update_heartbeat(worker.worker_id)
                except Exception:  # noqa: BLE001 - the database is away: the jobs fail anyway
                    log.warning("%s: heartbeat during the stop failed", self.name)
            await asyncio.wait({running}, timeout=max(0.0, min(self.heartbeat, deadline - loop.time())))
        return running.done()


class WorkerThread(threading.Thread):
    """A QueueWorker in a thread; `worker.abandoned` after it ended: the process must exit
    at once (os._exit), as the interpreter's exit would wait for the abandoned job."""

    def __init__(self, worker: QueueWorker) -> None:
        super().__init__(target=worker.run, name="queue-worker", daemon=True)
        self.worker = worker


def start_in_thread(runtime: Runtime, stop: threading.Event, *, scan_interval: float, send_interval: float) -> WorkerThread:
    """The queue worker beside the API of a single `mailwidget serve` on PostgreSQL."""
    thread = WorkerThread(QueueWorker(runtime, stop, scan_interval=scan_interval, send_interval=send_interval, name="serve-worker"))
    thread.start()
    return thread
