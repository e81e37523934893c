"""Liveness (`/api/v1/health`) and readiness (`/api/v1/ready`): the only endpoints without a
token, so they say nothing but ok or not and which check failed (no URL, no error text).
Also at `/health` and `/ready`, the paths probes (a load balancer, Kubernetes) are set up
with by default; those two are left out of the OpenAPI document, which lists each once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from crm.store import job_queue
from crm.store.db import READ_ONLY
from widget_api import heartbeats, metrics
from widget_api.deps import Runtime, RuntimeDep
from widget_api.errors import RETRY_AFTER, body, responses
from widget_api.routing import PrefixRouter

router = PrefixRouter(tags=["health"], responses=responses(503, authenticated=False))

DB_TIMEOUT = 2.0  # seconds: a readiness probe must answer before the balancer gives up on it
QUEUE_STALE_SECONDS = 120.0  # a due job waiting this long with no live worker: not ready


@router.get("/health", include_in_schema=False)
@router.get("/api/v1/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. No database: a database outage is not a reason to
    restart the API (it serves again by itself once the database is back); `/ready` says it."""
    return {"status": "ok"}


@router.get("/ready", include_in_schema=False)
@router.get("/api/v1/ready")
def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Ready to take traffic: the database answers SELECT 1 within DB_TIMEOUT, every
    background loop of this process beat recently (widget_api.heartbeats), and, with the job
    queue (PostgreSQL), due jobs are not left waiting without a live worker (`queue`: jobs
    waiting, the oldest one's wait, the freshest worker heartbeat)."""
    workers = heartbeats.status()
    checks: dict[str, object] = {"database": database_check(runtime), "workers": workers}
    named: list[tuple[str, dict[str, object]]] = [("database", checks["database"]), *workers.items()]  # type: ignore[list-item]
    if runtime.settings.job_queue and checks["database"]["ok"]:  # type: ignore[index]
        checks["queue"] = queue_check(runtime)
        named.append(("queue", checks["queue"]))  # type: ignore[arg-type]
    failed = [name for name, c in named if not c["ok"]]
    if not failed:
        return JSONResponse({"status": "ok", "checks": checks})
    detail = "not ready: " + ", ".join(failed)
    return JSONResponse(body(request, "not_ready", detail, checks=checks), status_code=503, headers={"Retry-After": RETRY_AFTER})


def database_check(runtime: Runtime) -> dict[str, object]:
    def select_one(conn: Connection) -> dict[str, object]:
        conn.execute(text("SELECT 1"))
        return {}

    return _probe(runtime, select_one)


def queue_check(runtime: Runtime) -> dict[str, object]:
    """Not ok when a due job has waited longer than QUEUE_STALE_SECONDS while no worker beat
    within three heartbeat intervals (no worker runs, or all are cut off)."""
    alive_within = 3 * runtime.settings.queue_heartbeat

    def read(conn: Connection) -> dict[str, object]:
        q = job_queue.state(conn)
        metrics.set_queue(q.by_queue, q.oldest_todo_age_s)
        live = q.last_heartbeat_age_s is not None and q.last_heartbeat_age_s <= alive_within
        stuck = q.oldest_todo_age_s is not None and q.oldest_todo_age_s > QUEUE_STALE_SECONDS
        return {
            "ok": live or not stuck, "todo": q.todo, "doing": q.doing, "failed": q.failed,
            "oldest_todo_age_s": None if q.oldest_todo_age_s is None else round(q.oldest_todo_age_s, 1),
            "workers": q.workers, "last_heartbeat_age_s": None if q.last_heartbeat_age_s is None else round(q.last_heartbeat_age_s, 1),
        }

    return _probe(runtime, read)


def _probe(runtime: Runtime, check: Callable[[Connection], dict[str, object]]) -> dict[str, object]:
    # In a thread with a deadline: a pool checkout or a connect to an unreachable host can
    # block far longer than any statement timeout covers.
    outcome: dict[str, object] = {"ok": False, "error": "timeout"}
    start = time.perf_counter()

    def attempt() -> dict[str, object]:
        with runtime.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})  # begins deferred: never waits behind a writer
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {int(DB_TIMEOUT * 1000)}"))
            return check(conn)

    def probe() -> None:
        try:
            try:
                found = attempt()
            except DBAPIError as exc:
                # A pooled connection the server cut (it restarted since): SQLAlchemy dropped
                # the pool on that error, so one more try on a fresh connection says whether
                # the database answers now, not whether it was away once.
                if not exc.connection_invalidated:
                    raise
                found = attempt()
            outcome.update({"ok": True, "error": None, **found})
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type only, the message may carry the URL
            outcome.update(ok=False, error=type(exc).__name__)

    worker = threading.Thread(target=probe, name="ready-db-probe", daemon=True)
    worker.start()
    worker.join(DB_TIMEOUT)
    result = dict(outcome) if not worker.is_alive() else {"ok": False, "error": "timeout"}
    result["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return {k: v for k, v in result.items() if v is not None}
