"""`mailwidget outbox-send`: one pass of the outbox's sender (every due mail, under each
organisation's daily limit), and the loop `serve` and `worker` run beside their other work."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from widget_api import heartbeats, metrics
from widget_api.cli._runtime import cli_runtime
from widget_api.outbox_sender import send_pass
from widget_api.runtime import Runtime

log = logging.getLogger(__name__)
LOOP = "outbox-sender"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("outbox-send", help="send the due mails of the outbox once (rules, form replies, bulk), within the daily limits")
    p.add_argument("--max", type=int, default=None, help="at most this many mails")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runtime = cli_runtime()
    try:
        result = send_pass(runtime.sessions, runtime.secrets, max_mails=args.max, allow_private=runtime.settings.allow_private_hosts)
    finally:
        runtime.close()
    print(f"outbox: {result.sent} sent, {result.retried} to retry, {result.failed} failed, {result.recovered} interrupted earlier (unconfirmed)", file=sys.stdout)
    return 0


def outbox_loop(runtime: Runtime, interval: float, stop: threading.Event) -> None:
    """A send pass every `interval` seconds until `stop`; a failing pass (database
    restarting) is logged and the next one tried. Only completed passes beat `/ready`."""
    from widget_api.tasks import send_outbox  # the queue's task on PostgreSQL, this loop on SQLite

    heartbeats.beat(LOOP, interval)
    try:
        while not stop.is_set():
            try:
                send_outbox(runtime)
            except Exception:
                metrics.TASK_FAILURES.labels(LOOP).inc()
                log.exception("%s: the send pass failed; next one in %g s", LOOP, interval)
            else:
                heartbeats.beat(LOOP, interval)
            stop.wait(interval)
    finally:
        heartbeats.forget(LOOP)


def start_loop(runtime: Runtime, interval: float, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=outbox_loop, args=(runtime, interval, stop), name=LOOP, daemon=True)
    thread.start()
    return thread
