"""Near-real-time scans: IMAP IDLE on each connected mailbox's INBOX and Junk folder, and
the scan of THAT mailbox as soon as its server reports a change (mail rescued or an
invitation update applied within seconds, not at the next poll).

One thread per watched folder, at most `idle_max_connections` of them per process (the
mailboxes beyond are polled only, as are those whose server lacks IDLE); the polling loop
(widget_api.cli.spam.worker_loop, or the queue's periodic scans) stays the fallback for
everything. A change calls `on_change`: by default the scan itself, in the watching thread,
through widget_api.mailbox_scan (so an IDLE-triggered scan never runs beside a polled one);
a queue worker passes one that defers a `scan_mailbox` job instead (widget_api.queue).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from crm.domain.errors import DomainError
from crm.domain.principal import Principal
from mail_adapter.idle import JUNK, FolderWatcher
from widget_api import heartbeats, metrics
from widget_api.mailbox_scan import accounts, scan_mailbox
from widget_api.runtime import Runtime

log = logging.getLogger(__name__)
FOLDERS = ("INBOX", JUNK)
OnChange = Callable[[int, Principal], object]  # (mailbox account id, its owner): a change was seen
NAME = "idle-watch"


def backoff(attempt: int, base: float = 0.5, cap: float = 300.0) -> float:
    """Exponential delay with jitter (half fixed, half random): after a server restart, the
    watchers of its many mailboxes do not all reconnect in the same instant."""
    delay = min(cap, base * 2 ** min(attempt, 20))
    return delay / 2 + random.uniform(0, delay / 2)


class FolderThread(threading.Thread):
    """Holds IDLE on one folder of one mailbox until `stop`; a change scans the mailbox."""

    def __init__(self, watch: IdleWatch, account_id: int, principal: Principal, folder: str) -> None:
        super().__init__(name=f"idle-{account_id}-{folder.strip(chr(92)).lower()}", daemon=True)
        self.watch, self.account_id, self.principal, self.folder = watch, account_id, principal, folder
        self.stop = threading.Event()
        self.unsupported = False  # the server has no IDLE: left to polling

    def run(self) -> None:
        runtime, attempt = self.watch.runtime, 0
        while not self._stopping():
            try:
                with runtime.sessions() as s:  # the password decrypted as the scan does, anew at each connect
                    settings = runtime.account_settings(s, self.principal, self.account_id)
                watcher = FolderWatcher(settings, self.folder, metrics.observe_imap, self.watch.renew_seconds)
                if not watcher.open():
                    self.unsupported = True
                    log.info("idle: the server of mailbox %s has no IDLE; it is polled only", self.account_id)
                    return
            except DomainError as exc:
                attempt += 1
                log.warning("idle: mailbox %s (%s) cannot be watched: %s", self.account_id, self.folder, exc.detail)
                self._pause(backoff(attempt))
                continue
            metrics.IDLE_CONNECTIONS.inc()
            try:
                # IDLE first, then the scan of what arrived while not watching: what arrives
                # during that scan (after its listing) is told by IDLE, not left to the poll.
                watcher.wait(0)
                self.scan()
                attempt = 0
                while not self._stopping():
                    if watcher.wait(self.watch.slice_seconds):
                        self.scan()
            except DomainError as exc:
                attempt += 1
                log.warning("idle: mailbox %s (%s) lost its connection: %s", self.account_id, self.folder, exc.detail)
            finally:
                metrics.IDLE_CONNECTIONS.dec()
                watcher.close()
            self._pause(backoff(attempt))

    def scan(self) -> None:
        if self.watch.on_change is not None:
            try:
                self.watch.on_change(self.account_id, self.principal)
            except Exception:  # noqa: BLE001 - the queue is unreachable: the periodic scan finds the mail
                metrics.TASK_FAILURES.labels("idle-defer").inc()
                log.warning("idle: the scan of mailbox %s could not be queued", self.account_id)
            return
        self.scan_here()

    def scan_here(self) -> None:
        """Scan the mailbox; if another scan holds its lease, try again shortly, as that one
        may have started before this change arrived."""
        while not self._stopping():
            try:
                result = scan_mailbox(self.watch.runtime, self.principal, self.account_id, trigger="idle")
            except DomainError as exc:  # the scan's own connection failed: the next change or poll retries
                metrics.TASK_FAILURES.labels("idle-scan").inc()
                log.warning("idle: scan of mailbox %s failed: %s", self.account_id, exc.detail)
                return
            if result is not None:
                return
            self._pause(1.0)

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.watch.stop.is_set()

    def _pause(self, seconds: float) -> None:
        self.stop.wait(seconds)


class IdleWatch:
    """Keeps a FolderThread on INBOX and Junk of each mailbox (up to the bound), starting and
    ending them as mailboxes are connected and removed, until `stop`."""

    def __init__(
        self, runtime: Runtime, stop: threading.Event, *, refresh_seconds: float = 60.0, slice_seconds: float = 1.0, renew_seconds: float = 24 * 60.0, on_change: OnChange | None = None
    ) -> None:
        self.runtime, self.stop, self.on_change = runtime, stop, on_change
        self.max_connections = runtime.settings.idle_max_connections
        self.refresh_seconds, self.slice_seconds, self.renew_seconds = refresh_seconds, slice_seconds, renew_seconds
        self.threads: dict[tuple[int, str], FolderThread] = {}

    def refresh(self) -> None:
        wanted: dict[tuple[int, str], Principal] = {}
        for account_id, principal in accounts(self.runtime):
            for folder in FOLDERS:
                if len(wanted) < self.max_connections:
                    wanted[(account_id, folder)] = principal
        for key, thread in list(self.threads.items()):
            if key not in wanted or not thread.is_alive() and not thread.unsupported:
                thread.stop.set()
                del self.threads[key]
        for key, principal in wanted.items():
            if key not in self.threads:
                self.threads[key] = FolderThread(self, key[0], principal, key[1])
                self.threads[key].start()

    def run(self) -> None:
        heartbeats.beat(NAME, self.refresh_seconds)
        try:
            while not self.stop.is_set():
                try:
                    self.refresh()
                except Exception:
                    metrics.TASK_FAILURES.labels(NAME).inc()
                    log.exception("%s: listing the mailboxes failed; next try in %g s", NAME, self.refresh_seconds)
                else:
                    heartbeats.beat(NAME, self.refresh_seconds)
                self.stop.wait(self.refresh_seconds)
        finally:
            for thread in self.threads.values():
                thread.stop.set()
            for thread in self.threads.values():
                thread.join(10)  # each leaves IDLE and logs out
            heartbeats.forget(NAME)


def start(runtime: Runtime, stop: threading.Event, *, on_change: OnChange | None = None, **options: float) -> threading.Thread | None:
    """The IDLE watch in a thread of its own, beside the polling loop; None when turned off."""
    if runtime.settings.idle_max_connections <= 0:
        return None
    thread = threading.Thread(target=IdleWatch(runtime, stop, on_change=on_change, **options).run, name=NAME, daemon=True)
    thread.start()
    return thread
