"""Liveness and readiness: the only endpoint without a token."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from widget_api.deps import RuntimeDep
from widget_api.errors import responses

router = APIRouter(tags=["health"], responses=responses(503, authenticated=False))


@router.get("/api/v1/health")
def health(runtime: RuntimeDep) -> dict[str, str]:
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}
