"""`GET /metrics`: this process's Prometheus metrics, for an admin's full-scope token
(route names and volumes are the organisation's business, not the public's)."""

from __future__ import annotations

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from widget_api.deps import AdminUser, RuntimeDep
from widget_api.errors import responses
from widget_api.metrics import REGISTRY
from widget_api.routes.health import queue_check
from widget_api.routing import PrefixRouter

router = PrefixRouter(tags=["operations"], responses=responses(403))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
def metrics(_admin: AdminUser, runtime: RuntimeDep) -> Response:
    if runtime.settings.job_queue:
        # The queue's depth is the database's, not this process's: read at each scrape (the
        # same reading `/ready` makes, with its deadline); unreadable, the last values stay.
        queue_check(runtime)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
