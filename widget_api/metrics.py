"""Prometheus metrics of this process, served at `/metrics` (admin token): request latency
and count by route template, IMAP round trips, background task failures.

Labels are bounded sets only: the route's template (`/api/v1/leads/{lead_id}`), never the
raw path, so an id never becomes a time series of its own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:  # annotations only: the command line's Runtime imports this module
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Own registry: every app built in one process (tests build many) shares these series, and
# nothing another library puts in the default registry is exposed by accident.
REGISTRY = CollectorRegistry()
UNMATCHED = "unmatched"  # no route: a 404, static files, a CORS preflight

REQUEST_SECONDS = Histogram(
    "mailwidget_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUESTS = Counter("mailwidget_http_requests", "Requests answered, by route template and status", ["method", "route", "status"], registry=REGISTRY)
IMAP_SECONDS = Histogram(
    "mailwidget_imap_round_trip_seconds",
    "IMAP commands sent (the count) and the wait for their tagged answer, by command",
    ["command"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
SCANS = Counter("mailwidget_mailbox_scans", "Scans of one mailbox, by trigger (poll, idle) and outcome (done, skipped: its lease was held)", ["trigger", "outcome"], registry=REGISTRY)
IDLE_CONNECTIONS = Gauge("mailwidget_imap_idle_connections", "IMAP connections of this process holding IDLE (or polling a server without it)", registry=REGISTRY)
STALLED_RETRIED = Counter("mailwidget_queue_stalled_retried", "Jobs of a worker that stopped beating (killed, cut off) put back in the queue, by task", ["task"], registry=REGISTRY)
QUEUE_JOBS = Gauge("mailwidget_queue_jobs", "Jobs of the queue (PostgreSQL) due and waiting (todo) or running (doing), by queue, read at each scrape", ["queue", "status"], registry=REGISTRY)
QUEUE_OLDEST_SECONDS = Gauge("mailwidget_queue_oldest_todo_seconds", "How long the oldest due job has waited, read at each scrape", registry=REGISTRY)
TASK_FAILURES = Counter("mailwidget_background_task_failures", "Background work that failed, by task", ["task"], registry=REGISTRY)


def set_queue(by_queue: dict[tuple[str, str], int], oldest_todo_seconds: float | None) -> None:
    """The queue gauges from one reading (crm.store.job_queue): series of queues now empty go."""
    QUEUE_JOBS.clear()
    for (queue, status), count in by_queue.items():
        QUEUE_JOBS.labels(queue, status).set(count)
    QUEUE_OLDEST_SECONDS.set(oldest_todo_seconds or 0.0)


def observe_imap(command: str, seconds: float) -> None:
    IMAP_SECONDS.labels(command).observe(seconds)


def route_of(scope: Scope) -> str:
    route = scope.get("route")  # set by FastAPI's router on the shared scope once matched
    return getattr(route, "path", None) or UNMATCHED


class RequestMetrics:
    """ASGI middleware: one latency observation and one count per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless an answer starts: an exception that escaped everything

        async def send_seeing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seeing_status)
        finally:
            route = route_of(scope)
            REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
