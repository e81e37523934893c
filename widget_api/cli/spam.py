"""`mailwidget rescue` (one scan of every connected mailbox, or one user's) and
`mailwidget worker` (the same on a schedule, until SIGTERM or Ctrl-C)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from crm.domain.errors import DomainError
from crm.store.db import refresh_statistics
from widget_api import heartbeats, metrics
from widget_api.cli._runtime import cli_runtime
from widget_api.logs import say
from widget_api.mailbox_scan import accounts, scan_mailbox
from widget_api.runtime import Runtime

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rescue", help="move authenticated mail of whitelisted senders out of Junk (and apply calendar updates), once")
    p.add_argument("--user", help="only this user's mailboxes (email)")
    p.set_defaults(func=run_rescue)
    p = sub.add_parser("worker", help="run the rescue scan of every mailbox on a schedule")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between scans (default 60)")
    p.add_argument("--send-interval", type=float, default=15.0, help="seconds between passes of the outbox's sender (default 15)")
    p.set_defaults(func=run_worker)


def scan_all(runtime: Runtime, only_user: str | None = None, out=sys.stderr) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """One rescue pass over every mailbox; a failing mailbox is reported and skipped.
    Returns (mailboxes, moved, kept)."""
    found = accounts(runtime, only_user)
    moved = kept = 0
    for i, (account_id, principal) in enumerate(found, 1):
        email = principal.email
        try:
            result = scan_mailbox(runtime, principal, account_id)
            if result is None:
                print(f"[{i}/{len(found)}] {email}: skipped (being scanned elsewhere)", file=out, flush=True)
                continue
            moved += result.moved
            kept += result.kept
            print(
                f"[{i}/{len(found)}] {email}: moved {result.moved}, kept in spam {result.kept}, calendar updates applied {result.applied}, mails auto-logged {result.logged}",
                file=out,
                flush=True,
            )
        except DomainError as exc:
            metrics.TASK_FAILURES.labels("mailbox-scan").inc()
            print(f"[{i}/{len(found)}] {email}: skipped ({exc.detail})", file=out, flush=True)
    return len(found), moved, kept


def run_rescue(args: argparse.Namespace) -> int:
    runtime = cli_runtime()
    try:
        boxes, moved, kept = scan_all(runtime, args.user)
    finally:
        runtime.close()
    print(f"{boxes} mailbox(es) scanned, {moved} message(s) moved to the inbox, {kept} left in spam (not authenticated)")
    return 0


def worker_loop(runtime: Runtime, interval: float, stop: threading.Event, name: str = "rescue-worker") -> None:
    """Scan every mailbox each `interval` seconds until `stop`. A failing pass is logged and
    the next one tried (a restarting database must not end the loop for good); only passes
    that completed beat the heartbeat `/ready` reads."""
    heartbeats.beat(name, interval)
    try:
        while not stop.is_set():
            try:
                scan_all(runtime)
                with runtime.sessions.begin() as s:
                    refresh_statistics(s)
            except Exception:
                metrics.TASK_FAILURES.labels(name).inc()
                log.exception("%s: the scan pass failed; next one in %g s", name, interval)
            else:
                heartbeats.beat(name, interval)
            stop.wait(interval)
    finally:
        heartbeats.forget(name)


def run_worker(args: argparse.Namespace) -> int:
    """On PostgreSQL, a worker of the job queue (widget_api.queue) beside the IMAP IDLE
    watch; on SQLite, the in-process loops. SIGTERM or Ctrl-C: the running jobs finish (at
    most MAILWIDGET_QUEUE_SHUTDOWN_SECONDS), no new one starts, exit 0."""
    runtime = cli_runtime()  # JSON logs from here on under MAILWIDGET_LOG_FORMAT=json
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if runtime.settings.job_queue:
        return _queue_worker(runtime, args, stop)
    from widget_api.cli.outbox import start_loop

    sender = start_loop(runtime, args.send_interval, stop)  # automatic mail, beside the scans
    say(f"worker: scanning every {args.interval:g} s, running import jobs and the outbox; stop with Ctrl-C", "mailwidget.worker")
    runtime.import_worker.start()
    from widget_api import idle_watch

    idle = idle_watch.start(runtime, stop)  # near-real-time scans; the loop below is the fallback
    try:
        worker_loop(runtime, args.interval, stop)
    finally:
        stop.set()
        sender.join(timeout=60)
        if idle is not None:
            idle.join(timeout=30)  # leaves IDLE and logs out of every folder
        runtime.close()
    return 0


def _queue_worker(runtime: Runtime, args: argparse.Namespace, stop: threading.Event) -> int:
    from widget_api import idle_watch, queue

    worker = queue.QueueWorker(runtime, stop, scan_interval=args.interval, send_interval=args.send_interval)
    say(f"worker: job queue on PostgreSQL, mailbox scans every {args.interval:g} s, {worker.concurrency} jobs at once; stop with Ctrl-C", "mailwidget.worker")
    # IDLE defers a scan job when a server reports new mail (whichever worker takes it).
    idle = idle_watch.start(runtime, stop, on_change=lambda account_id, _principal: queue.defer_scan(runtime.settings, account_id, "idle"))
    try:
        worker.run()
    finally:
        stop.set()
        if worker.abandoned:
            # A job's thread still runs: exit now, without the interpreter's wait for it nor
            # IDLE's logouts (the job is retried elsewhere once this worker's heartbeat is
            # missed: it must not still run here by then).
            logging.shutdown()
            os._exit(0)
        if idle is not None:
            idle.join(timeout=30)
        runtime.close()
    say("worker: stopped", "mailwidget.worker")
    return 0
