"""`mailwidget serve`: migrate, create the first organisation on first run, serve."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import threading

from crm.services import organisations
from widget_api.cli._runtime import cli_runtime
from widget_api.runtime import Runtime


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="migrate the database and serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--org", default="My company", help="name of the organisation created on first run")
    p.add_argument("--admin", default="admin@example.com", help="email of the admin created on first run")
    p.add_argument("--time-zone", default="Asia/Tokyo")
    p.add_argument("--scan-interval", type=float, default=300.0, help="seconds between rescue scans of every mailbox")
    p.add_argument("--send-interval", type=float, default=15.0, help="seconds between passes of the outbox's sender")
    p.add_argument(
        "--workers", type=int, default=1,
        help="API processes behind the one port (uvicorn workers; PostgreSQL advised); with more than one, no scan runs in them: run `mailwidget worker` beside",
    )
    p.add_argument("--no-scan", action="store_true", help="no rescue scan in this process (`mailwidget worker` processes do it)")
    p.set_defaults(func=run)


def loopback_only(host: str) -> bool:
    """Whether a server bound to host is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from widget_api.main import create_app

    if loopback_only(args.host):
        # Bound to loopback (`make serve`), the API's users are on this machine and reach its
        # network anyway: refusing their local mail server (a Dovecot on 127.0.0.1) would
        # protect nothing. Served to others, private targets stay refused unless the admin
        # sets MAILWIDGET_ALLOW_PRIVATE_HOSTS.
        os.environ.setdefault("MAILWIDGET_ALLOW_PRIVATE_HOSTS", "1")
    runtime = cli_runtime()  # JSON logs from here on under MAILWIDGET_LOG_FORMAT=json
    json_logs = runtime.settings.log_format == "json"
    with runtime.sessions.begin() as session:
        token = organisations.bootstrap(session, org_name=args.org, admin_email=args.admin, time_zone=args.time_zone)
    if token:
        print(f"First run: organisation {args.org!r} and admin {args.admin} created.")
        print(f"Admin API token (shown once, keep it): {token}", flush=True)
    log_config = None if json_logs else uvicorn.config.LOGGING_CONFIG  # None: uvicorn's loggers propagate to the JSON handler
    if args.workers > 1:
        # Each API process builds its own runtime from the environment (spawned, not
        # forked): it must find the same database and key as this one.
        runtime.close()
        if not os.environ.get("MAILWIDGET_SECRET_KEY") and not os.environ.get("MAILWIDGET_SECRET_KEY_FILE"):
            os.environ["MAILWIDGET_SECRET_KEY_FILE"] = str((runtime.settings.data_dir / "secret.key").resolve())  # the file ensure_secret_key made
        os.environ.setdefault("DATABASE_URL", runtime.settings.database_url)
        if runtime.settings.database_url.startswith("sqlite"):
            print("warning: several API processes on SQLite take turns for every write; use PostgreSQL (DATABASE_URL)", flush=True)
        print(f"{args.workers} API processes; run the background scans with `mailwidget worker`", flush=True)
        uvicorn.run(
            "widget_api.cli.serve:process_app", factory=True, workers=args.workers,
            host=args.host, port=args.port, log_level="info", log_config=log_config,
        )
        return 0
    stop = threading.Event()
    queue_thread = None
    if runtime.settings.job_queue:
        # PostgreSQL: one worker of the job queue in a thread beside the API runs every
        # background job (scans, imports, the outbox), as `mailwidget worker` processes do.
        if not args.no_scan:
            from widget_api import idle_watch, queue

            worker_runtime = cli_runtime()
            queue_thread = queue.start_in_thread(worker_runtime, stop, scan_interval=args.scan_interval, send_interval=args.send_interval)
            idle_watch.start(worker_runtime, stop, on_change=lambda account_id, _p: queue.defer_scan(worker_runtime.settings, account_id, "idle"))
    else:
        _start_loops(args, runtime, stop)
    # uvicorn puts back the handlers it found and raises the signal again once it stopped:
    # with the default SIGTERM handler the process would die there, the running jobs of the
    # queue worker cut off instead of drained. Ours only set `stop` (the finally below).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        uvicorn.run(create_app(runtime.settings, runtime), host=args.host, port=args.port, log_level="info", log_config=log_config)
    finally:
        stop.set()
        if queue_thread is not None:
            queue_thread.join(runtime.settings.queue_shutdown_seconds + 10)  # the running jobs finish
            if queue_thread.worker.abandoned:  # as `mailwidget worker` does (widget_api.cli.spam)
                logging.shutdown()
                os._exit(0)
    return 0


def _start_loops(args: argparse.Namespace, runtime: Runtime, stop: threading.Event) -> None:
    """The embedded mode's background work (SQLite): the functions of widget_api.tasks in
    this process's own threads."""
    if not args.no_scan:
        # The scheduled rescue scan runs beside the API (its own thread and connections).
        from widget_api.cli.spam import worker_loop

        worker = threading.Thread(target=worker_loop, args=(cli_runtime(), args.scan_interval, stop), name="rescue-worker", daemon=True)
        worker.start()
    # The outbox's sender too: automatic mail (form auto-replies) leaves within seconds.
    from widget_api.cli.outbox import start_loop

    start_loop(cli_runtime(), args.send_interval, stop)
    # Import jobs left queued or running by the previous process resume now, not at the next upload.
    runtime.import_worker.start()
    # IMAP IDLE on every mailbox's INBOX and Junk: a change is scanned within seconds.
    from widget_api import idle_watch

    idle_watch.start(cli_runtime(), stop)


def process_app():  # type: ignore[no-untyped-def]
    """The app of one API process of `serve --workers N`: settings from the environment the
    parent prepared, JSON logs configured here (a spawned process starts without them)."""
    from widget_api.config import Settings
    from widget_api.main import create_app

    settings = Settings.from_env()
    if settings.log_format == "json":
        from widget_api.logs import configure

        configure("json")
    return create_app(settings)
