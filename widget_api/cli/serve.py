"""`mailwidget serve`: migrate, create the first organisation on first run, serve."""

from __future__ import annotations

import argparse
import ipaddress
import os
import threading

from crm.services import organisations
from widget_api.cli._runtime import cli_runtime


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="migrate the database and serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--org", default="My company", help="name of the organisation created on first run")
    p.add_argument("--admin", default="admin@example.com", help="email of the admin created on first run")
    p.add_argument("--time-zone", default="Asia/Tokyo")
    p.add_argument("--scan-interval", type=float, default=300.0, help="seconds between rescue scans of every mailbox")
    p.add_argument("--send-interval", type=float, default=15.0, help="seconds between passes of the outbox's sender")
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
    runtime = cli_runtime()
    json_logs = runtime.settings.log_format == "json"
    if json_logs:
        from widget_api.logs import configure

        configure("json")
    with runtime.sessions.begin() as session:
        token = organisations.bootstrap(session, org_name=args.org, admin_email=args.admin, time_zone=args.time_zone)
    if token:
        print(f"First run: organisation {args.org!r} and admin {args.admin} created.")
        print(f"Admin API token (shown once, keep it): {token}", flush=True)
    # The scheduled rescue scan runs beside the API (its own thread and connections).
    from widget_api.cli.spam import worker_loop

    stop = threading.Event()
    worker = threading.Thread(target=worker_loop, args=(cli_runtime(), args.scan_interval, stop), name="rescue-worker", daemon=True)
    worker.start()
    # The outbox's sender too: automatic mail (form auto-replies) leaves within seconds.
    from widget_api.cli.outbox import start_loop

    start_loop(cli_runtime(), args.send_interval, stop)
    # IMAP IDLE on every mailbox's INBOX and Junk: a change is scanned within seconds.
    from widget_api import idle_watch

    idle_watch.start(cli_runtime(), stop)
    try:
        # log_config=None: uvicorn's own loggers propagate to the JSON handler instead of theirs
        uvicorn.run(create_app(runtime.settings, runtime), host=args.host, port=args.port, log_level="info", log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG)
    finally:
        stop.set()
    return 0
