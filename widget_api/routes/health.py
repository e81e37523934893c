"""Liveness (`/health`) and readiness (`/ready`): the only endpoints without a token, so
they say nothing but ok or not and which check failed (no URL, no error text)."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from crm.store.db import READ_ONLY
from widget_api import heartbeats
from widget_api.deps import Runtime, RuntimeDep
from widget_api.errors import RETRY_AFTER, body, responses

router = APIRouter(tags=["health"], responses=responses(503, authenticated=False))

DB_TIMEOUT = 2.0  # seconds: a readiness probe must answer before the balancer gives up on it


@router.get("/api/v1/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. No database: a database outage is not a reason to
    restart the API (it serves again by itself once the database is back); `/ready` says it."""
    return {"status": "ok"}


@router.get("/api/v1/ready")
def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Ready to take traffic: the database answers SELECT 1 within DB_TIMEOUT and every
    background loop of this process beat recently (widget_api.heartbeats)."""
    workers = heartbeats.status()
    checks: dict[str, object] = {"database": database_check(runtime), "workers": workers}
    failed = [name for name, c in (("database", checks["database"]), *workers.items()) if not c["ok"]]  # type: ignore[index]
    if not failed:
        return JSONResponse({"status": "ok", "checks": checks})
    detail = "not ready: " + ", ".join(failed)
    return JSONResponse(body(request, "not_ready", detail, checks=checks), status_code=503, headers={"Retry-After": RETRY_AFTER})


def database_check(runtime: Runtime) -> dict[str, object]:
    # In a thread with a deadline: a pool checkout or a connect to an unreachable host can
    # block far longer than any statement timeout covers.
    outcome: dict[str, object] = {"ok": False, "error": "timeout"}
    start = time.perf_counter()

    def probe() -> None:
        try:
            with runtime.engine.connect() as conn:
                conn.execution_options(**{READ_ONLY: True})  # begins deferred: never waits behind a writer
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL statement_timeout = {int(DB_TIMEOUT * 1000)}"))
                conn.execute(text("SELECT 1"))
            outcome.update(ok=True, error=None)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type only, the message may carry the URL
            outcome.update(ok=False, error=type(exc).__name__)

    worker = threading.Thread(target=probe, name="ready-db-probe", daemon=True)
    worker.start()
    worker.join(DB_TIMEOUT)
    result = dict(outcome) if not worker.is_alive() else {"ok": False, "error": "timeout"}
    result["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return {k: v for k, v in result.items() if v is not None}
