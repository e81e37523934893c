"""The scan of ONE mailbox (spam rescue of its Junk, the calendar updates in its inbox, then
the auto-log of chosen people's mail in INBOX and Sent),
under the mailbox's lease: the polling loop, IDLE-triggered scans and any number of worker
processes may ask for it at once, and only one of them scans; the others skip (the one that
runs sees their mail too)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select

from crm.domain.errors import Conflict
from crm.domain.principal import Principal
from crm.services import mailboxes, spam
from crm.store import leases
from crm.store.models import MailboxAccount, User
from mail_adapter.junk import JunkFolder
from widget_api import metrics
from widget_api.calendar_scan import scan_inbox
from widget_api.mail_log_scan import scan_quietly
from widget_api.runtime import Runtime

log = logging.getLogger(__name__)
HOST = f"{socket.gethostname()[:64]}:{os.getpid()}"
API_LEASE_WAIT = 10.0  # seconds a scan asked through the API waits for a running one


def accounts(runtime: Runtime, only_user: str | None = None) -> list[tuple[int, Principal]]:
    """(mailbox account id, its owner) of every connected mailbox, by account id."""
    with runtime.sessions() as s:
        query = select(MailboxAccount.id, User.id, User.email, User.organisation_id, User.role, User.language).join(User, User.id == MailboxAccount.user_id)
        if only_user:
            query = query.where(User.email == only_user.strip().lower())
        rows = s.execute(query.order_by(MailboxAccount.id)).all()
    return [(account_id, Principal(user_id, org_id, email, role, language)) for account_id, user_id, email, org_id, role, language in rows]


@dataclass(frozen=True)
class ScanResult:
    moved: int
    kept: int
    applied: int
    logged: int = 0


@contextlib.contextmanager
def lease(runtime: Runtime, account_id: int, trigger: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the mailbox's scan lease for the block (True), trying for up to `wait` seconds;
    False when someone else still holds it. Released at the end of the block.

    While the block runs, a thread renews the lease every third of `scan_lease_seconds`: a
    long scan keeps it, and a worker SIGKILLed mid-scan (nothing renews any more) frees its
    mailbox within `scan_lease_seconds`, so the queue's retry of its job (widget_api.queue)
    gets the mailbox soon after."""
    holder = f"{HOST}:{uuid.uuid4().hex[:12]}"  # one per scan: two threads of a process exclude each other too
    seconds = runtime.settings.scan_lease_seconds
    deadline = time.monotonic() + wait
    while True:
        with runtime.sessions.begin() as s:  # committed at once: only then do others see it
            held = leases.take(s, account_id, holder, seconds)
        if held or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if not held:
        metrics.SCANS.labels(trigger, "skipped").inc()
        yield False
        return
    done = threading.Event()
    renewer = threading.Thread(target=_renew, args=(runtime, account_id, holder, seconds, done), name=f"lease-{account_id}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        done.set()
        renewer.join()
        with runtime.sessions.begin() as s:
            leases.release(s, account_id, holder)
    metrics.SCANS.labels(trigger, "done").inc()


def _renew(runtime: Runtime, account_id: int, holder: str, seconds: float, done: threading.Event) -> None:
    while not done.wait(seconds / 3):
        try:
            with runtime.sessions.begin() as s:
                leases.take(s, account_id, holder, seconds)
        except Exception:  # noqa: BLE001 - the database is away: the next renewal tries again
            log.warning("the scan lease of mailbox %s could not be renewed", account_id)


@contextlib.contextmanager
def api_lease(runtime: Runtime, account_id: int) -> Iterator[None]:
    """For a scan the user asked for: wait for a running scan to end (seconds, usually), then
    scan; 409 if it is still running after API_LEASE_WAIT."""
    with lease(runtime, account_id, "api", wait=API_LEASE_WAIT) as held:
        if not held:
            raise Conflict("this mailbox is being scanned right now; try again in a moment", code="scan_in_progress")
        yield


def scan_mailbox(runtime: Runtime, principal: Principal, account_id: int, *, trigger: str = "poll", expand: bool = True) -> ScanResult | None:
    """Scan the mailbox if no one else is scanning it; None when its lease is held elsewhere.
    Domain errors (an unreachable server, a refused login) propagate to the caller.
    `expand=False` leaves the changed calendar series to the caller (the queue runs their
    expansion as a job of its own: widget_api.queue)."""
    with lease(runtime, account_id, trigger) as held:
        if not held:
            return None
        with runtime.sessions.begin() as s:
            junk = JunkFolder(runtime.mailbox(s, principal, account_id))
            outcome = spam.rescue(s, principal, account_id, junk, mailboxes.read_context(s, principal))
        calendar_result = scan_inbox(runtime, principal, account_id, expand=expand)
        logged = scan_quietly(runtime, principal, account_id) or {}  # auto-log: INBOX and Sent
    return ScanResult(len(outcome.moved), len(outcome.kept), calendar_result["applied"], logged.get("logged", 0))
