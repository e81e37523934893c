"""Near-real-time scans by IMAP IDLE on a real Dovecot: mail appended to Junk or INBOX is
scanned within seconds although the polling loop would only come in 300 s; a dropped
connection is re-established; a server without IDLE is left to polling."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mail_adapter.idle import JUNK, FolderWatcher
from mail_adapter.mailbox import MailboxSettings
from tests.factories import connect_mailbox, make_user
from tests.test_calendar import accept, corpus, deliver, occurrences
from tests.test_spam import MX, folder_mids, mail
from widget_api import idle_watch, metrics
from widget_api.cli.spam import worker_loop

POLL = 300.0  # the polling loop's interval: nothing in these tests may wait for it


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def polls() -> float:
    return sum(metrics.SCANS.labels("poll", outcome)._value.get() for outcome in ("done", "skipped"))


def idle_scans() -> float:
    return metrics.SCANS.labels("idle", "done")._value.get()


@pytest.fixture()
def watching(runtime) -> Iterator[Callable[[int], None]]:  # type: ignore[no-untyped-def]
    """Starts the polling loop (every 300 s) and the IDLE watch; `ready(n)` waits until n
    folders are held in IDLE and their first scans are done."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    base = metrics.IDLE_CONNECTIONS._value.get()
    polled = polls()

    def ready(folders: int) -> None:
        if not threads:
            threads.append(threading.Thread(target=worker_loop, args=(runtime, POLL, stop), daemon=True))
            threads[0].start()
            watch = idle_watch.start(runtime, stop, slice_seconds=0.2, refresh_seconds=0.5)
            assert watch is not None
            threads.append(watch)
        wait_until(lambda: metrics.IDLE_CONNECTIONS._value.get() - base >= folders, 15)
        wait_until(lambda: polls() > polled, 15)  # the polling loop's first pass is over: the next is 300 s away
        time.sleep(1.0)  # the scan each watcher runs after connecting

    yield ready
    stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert metrics.IDLE_CONNECTIONS._value.get() == base  # every IDLE connection was closed


def test_junk_mail_of_a_whitelisted_sender_is_rescued_within_seconds(client, member, dovecot, imap_user, watching) -> None:  # type: ignore[no-untyped-def]
    assert connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX]).status_code == 201
    client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
    watching(2)
    before = idle_scans()
    dovecot.append(imap_user.name, "Junk", mail(mid="<idle@customer.co.jp>"))
    took = wait_until(lambda: folder_mids(dovecot, imap_user, "INBOX") == ["<idle@customer.co.jp>"], 10)
    assert took < 5
    wait_until(lambda: idle_scans() > before, 5)  # IDLE did it: the poll is 300 s away
    assert folder_mids(dovecot, imap_user, "Junk") == []


def test_an_invitation_update_in_the_inbox_is_applied_within_seconds(client, runtime, org, dovecot, imap_user, watching) -> None:  # type: ignore[no-untyped-def]
    receiver = make_user(runtime, org, "receiver@example.com")
    assert connect_mailbox(client, receiver, imap_user).status_code == 201
    accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
    watching(2)
    first = occurrences(client, receiver)[0][0]
    deliver(dovecot, imap_user, corpus("update-major.eml"))
    wait_until(lambda: occurrences(client, receiver)[0][0] == "2022-03-16T05:00:00+00:00", 10)
    assert first != "2022-03-16T05:00:00+00:00"


def test_the_watcher_reconnects_after_the_server_drops_it(client, member, dovecot, imap_user, watching) -> None:  # type: ignore[no-untyped-def]
    assert connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX]).status_code == 201
    client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
    watching(2)
    base = metrics.IDLE_CONNECTIONS._value.get()
    kicked = subprocess.run(["doveadm", "-c", str(dovecot.dir / "dovecot.conf"), "kick", imap_user.name], capture_output=True, text=True)
    assert kicked.returncode == 0, kicked.stderr
    wait_until(lambda: metrics.IDLE_CONNECTIONS._value.get() < base, 10)  # both connections noticed the drop
    wait_until(lambda: metrics.IDLE_CONNECTIONS._value.get() == base, 15)  # and came back (backoff: under a second at first)
    time.sleep(1.0)
    dovecot.append(imap_user.name, "Junk", mail(mid="<after-kick@customer.co.jp>"))
    assert wait_until(lambda: folder_mids(dovecot, imap_user, "INBOX") == ["<after-kick@customer.co.jp>"], 10) < 5


def test_folder_watcher_reports_changes_and_renews_idle(dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
    settings = MailboxSettings("127.0.0.1", imap_user.port, "plain", imap_user.name, imap_user.password, timeout=5, allow_private=True)
    watcher = FolderWatcher(settings, JUNK, renew_seconds=0.5)
    assert watcher.open()
    try:
        assert watcher.mailbox.selection is not None and watcher.mailbox.selection[0] == "Junk"  # the \Junk folder
        assert not watcher.wait(0.3)
        time.sleep(0.3)
        assert not watcher.wait(0.3)  # IDLE re-issued past renew_seconds, nothing changed
        for n in range(3):  # each of successive arrivals is told (IDLE stays on across them)
            dovecot.append(imap_user.name, "Junk", mail(mid=f"<m{n}@customer.co.jp>"))
            assert watcher.wait(3)
        dovecot.append(imap_user.name, "INBOX", mail(mid="<other@x.example>"))
        assert not watcher.wait(0.5)  # another folder: not this watcher's change
    finally:
        watcher.close()


def test_mail_arriving_between_the_selection_and_idle_is_told(dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
    """Dovecot reports at the start of IDLE nothing of what arrived since the previous command."""
    settings = MailboxSettings("127.0.0.1", imap_user.port, "plain", imap_user.name, imap_user.password, timeout=5, allow_private=True)
    watcher = FolderWatcher(settings, JUNK)
    assert watcher.open()
    try:
        dovecot.append(imap_user.name, "Junk", mail(mid="<before-idle@customer.co.jp>"))
        assert watcher.wait(2)
    finally:
        watcher.close()


def test_mail_arriving_during_the_scan_after_connecting_is_scanned_at_once(client, runtime, member, dovecot, imap_user, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The watcher scans what arrived while it was not watching; mail arriving once that
    scan has listed the folder is told by IDLE (issued before the scan), not left to the poll."""
    assert connect_mailbox(client, member, imap_user).status_code == 201
    object.__setattr__(runtime.settings, "idle_max_connections", 1)  # INBOX only (frozen settings: this test's own)
    scans: list[object] = []
    real = idle_watch.scan_mailbox

    def scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        scans.append(result)
        if len(scans) == 1:  # the first scan is over, its listing done: mail arrives now
            dovecot.append(imap_user.name, "INBOX", mail(mid="<during-scan@customer.co.jp>"))
        return result

    monkeypatch.setattr(idle_watch, "scan_mailbox", scan)
    stop = threading.Event()
    watch = idle_watch.start(runtime, stop, slice_seconds=0.2)
    assert watch is not None
    try:
        wait_until(lambda: len(scans) >= 2, 5)  # a scan for the new mail (the poll is not even running)
    finally:
        stop.set()
        watch.join(30)


def test_a_server_without_idle_is_left_to_polling(request) -> None:  # type: ignore[no-untyped-def]
    from tests.servers.dovecot import Dovecot

    with Dovecot(remove_capabilities=("IDLE",)) as server:
        user = server.add_user()
        watcher = FolderWatcher(MailboxSettings("127.0.0.1", server.port, "plain", user.name, user.password, timeout=5, allow_private=True), "INBOX")
        assert watcher.open() is False
        assert watcher.mailbox._client is None  # no connection kept for nothing


def test_connections_are_bounded(client, runtime, org, dovecot, watching) -> None:  # type: ignore[no-untyped-def]
    users = [make_user(runtime, org, f"rep{i}@acme.example") for i in range(3)]
    for user in users:
        assert connect_mailbox(client, user, dovecot.add_user()).status_code == 201
    object.__setattr__(runtime.settings, "idle_max_connections", 3)  # frozen settings: this test's own
    base = metrics.IDLE_CONNECTIONS._value.get()
    watching(3)
    time.sleep(1.0)
    assert metrics.IDLE_CONNECTIONS._value.get() - base == 3
