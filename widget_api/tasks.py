"""The background work, as plain functions of a Runtime. Two callers, the same code:

- on PostgreSQL, the job queue's tasks (widget_api.queue) call them in `mailwidget worker`
  processes (and in a thread of a single `mailwidget serve`), one job at a time per lock;
- on SQLite (the embedded `make serve`), the in-process loops call them (widget_api.cli.spam
  `worker_loop`, widget_api.cli.outbox `outbox_loop`, the import runner's threads, IDLE).

Every function is safe to run again after a crash half-way (the exactly-once guarantees
live in the services they call): the queue's retries rely on it."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import select

from crm.domain.principal import Principal
from crm.services import calendar, import_jobs
from crm.store.models import MailboxAccount, User
from widget_api.mailbox_scan import ScanResult
from widget_api.mailbox_scan import scan_mailbox as _scan
from widget_api.outbox_sender import PassResult, send_pass
from widget_api.runtime import Runtime


def principal_of_account(runtime: Runtime, account_id: int) -> Principal | None:
    """The owner of a mailbox account; None when it was removed meanwhile."""
    with runtime.sessions() as s:
        row = s.execute(
            select(User.id, User.organisation_id, User.email, User.role, User.language).join(MailboxAccount, MailboxAccount.user_id == User.id).where(MailboxAccount.id == account_id)
        ).one_or_none()
    return None if row is None else Principal(*row)


def principal_of_user(runtime: Runtime, user_id: int) -> Principal | None:
    with runtime.sessions() as s:
        row = s.execute(select(User.id, User.organisation_id, User.email, User.role, User.language).where(User.id == user_id)).one_or_none()
    return None if row is None else Principal(*row)


def connected_mailboxes(runtime: Runtime) -> list[int]:
    """The id of every connected mailbox account, for the periodic scans."""
    with runtime.sessions() as s:
        return list(s.scalars(select(MailboxAccount.id).order_by(MailboxAccount.id)))


def scan_mailbox(runtime: Runtime, account_id: int, *, trigger: str = "poll", expand: bool = True) -> ScanResult | None:
    """Spam rescue, calendar updates and auto-log of one mailbox (widget_api.mailbox_scan),
    under its lease; None when another scan holds the lease. A removed mailbox scans nothing."""
    principal = principal_of_account(runtime, account_id)
    if principal is None:
        return ScanResult(0, 0, 0)
    return _scan(runtime, principal, account_id, trigger=trigger, expand=expand)


def expand_series(runtime: Runtime, user_id: int) -> int:
    """Write the occurrences of the user's changed calendar series (crm.services.calendar);
    the number of series expanded."""
    principal = principal_of_user(runtime, user_id)
    if principal is None:
        return 0
    with runtime.sessions.begin() as s:
        return calendar.refresh_occurrences(s, principal)


def send_outbox(runtime: Runtime) -> PassResult:
    """One pass of the outbox's sender (its three-commit send: widget_api.outbox_sender)."""
    return send_pass(runtime.sessions, runtime.secrets, allow_private=runtime.settings.allow_private_hosts)


def next_import_lease_end(runtime: Runtime) -> datetime | None:
    """When the first live lease of a running import ends (crm.services.import_jobs)."""
    with runtime.read_sessions() as s:
        return import_jobs.next_lease_end(s)


def run_imports(runtime: Runtime, name: str, stop: threading.Event | None = None) -> int:
    """Claim and run import jobs until none is waiting (each batch committed with its row
    offset: widget_api.import_worker); the number of jobs run."""
    ran = 0
    while (stop is None or not stop.is_set()) and runtime.import_worker.run_once(name, stop):
        ran += 1
    return ran
