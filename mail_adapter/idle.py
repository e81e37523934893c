"""IMAP IDLE (RFC 2177) on one folder: `FolderWatcher` connects, selects the folder
read-only and tells when the server reports a change in it.

The watcher owns a connection of its own (never a pooled one: a connection in IDLE can do
nothing else). IDLE stays issued across calls of `wait`, so waiting in short slices (to
notice a shutdown) costs no round trip; it is re-issued before `renew_seconds` (RFC 2177:
servers may drop a client idle for 30 minutes). A server without the IDLE capability makes
`open` return False: its mailbox is left to polling.
"""

from __future__ import annotations

import contextlib
import select
import time

from imapclient import IMAPClient

from crm.domain.errors import MailboxUnavailable, MessageNotFound
from mail_adapter.junk import find_junk_folder
from mail_adapter.mailbox import Mailbox, MailboxSettings, RoundTripObserver

JUNK = "\\Junk"  # the folder given as this is the mailbox's spam folder, found as the scan finds it
CHANGES = (b"EXISTS", b"EXPUNGE", b"FETCH")  # mail arrived, left, or its flags changed
RENEW_SECONDS = 24 * 60.0


class FolderWatcher:
    def __init__(self, settings: MailboxSettings, folder: str, on_round_trip: RoundTripObserver | None = None, renew_seconds: float = RENEW_SECONDS) -> None:
        self.folder = folder
        self.renew_seconds = renew_seconds
        self.mailbox = Mailbox(settings, on_round_trip)
        self._idle_since: float | None = None  # monotonic time IDLE was issued; None: not in IDLE

    def open(self) -> bool:
        """Connect and select the folder; False when the server cannot IDLE (nothing kept open).
        MailboxError when the server is unreachable, refuses the login or lacks the folder."""

        def op(c: IMAPClient) -> bool:
            if not c.has_capability("IDLE"):
                return False
            name = find_junk_folder(c) if self.folder == JUNK else self.folder
            if name is None:
                raise MessageNotFound("the mailbox has no Junk folder", code="folder_not_found")
            self.mailbox.select_anew(c, name, readonly=True)  # EXAMINE: watching never changes \Recent
            return True

        if not self.mailbox.run(op, retry=False):
            self.mailbox.close()
            return False
        return True

    def wait(self, timeout: float) -> bool:
        """Block at most `timeout` seconds; True when the folder changed. A dropped connection
        (EOF, BYE) is MailboxUnavailable: the caller reconnects (`open` again)."""
        if self.mailbox._client is None:  # dropped: a new connection would have no folder selected
            raise MailboxUnavailable("the IDLE connection is closed; open it again")
        return self.mailbox.run(lambda c: self._wait(c, timeout), retry=False)

    def _wait(self, c: IMAPClient, timeout: float) -> bool:
        changed = False
        if self._idle_since is None:
            # Dovecot tells at the start of IDLE nothing of what changed since the previous
            # command (the selection, or the DONE of the last IDLE): mail that arrived in
            # between would wait for the next change or the poll. The NOOP just before asks.
            _text, pending = c.noop()
            changed = _changed(pending)
            c.idle()
            self._idle_since = time.monotonic()
        renew_at = self._idle_since + self.renew_seconds
        slice_ = max(0.0, min(timeout, renew_at - time.monotonic()))
        # Polled here rather than by idle_check's own wait: idle_check takes a connection the
        # server closed for "no responses", and the watcher would never notice it is dead.
        if _readable(c, slice_):
            responses = c.idle_check(timeout=0)
            if not responses or any(r[:1] == (b"BYE",) or r[1:2] == (b"BYE",) for r in responses):
                self._idle_since = None
                raise ConnectionError("the server closed the IDLE connection")
            changed = _changed(responses)
        # A change does not end IDLE: the scan runs on another connection, and this one keeps
        # hearing of what arrives meanwhile (leaving and re-entering IDLE at once made Dovecot
        # miss the next change).
        if time.monotonic() >= renew_at:
            _text, responses = c.idle_done()
            self._idle_since = None
            changed = changed or _changed(responses)
        return changed

    def close(self) -> None:
        """Leave IDLE and log out; quiet on a connection already gone."""
        if self._idle_since is not None and self.mailbox._client is not None:
            with contextlib.suppress(Exception):  # the connection may already be dead
                self.mailbox._client.idle_done()
        self._idle_since = None
        with contextlib.suppress(MailboxUnavailable):
            self.mailbox.close()


def _readable(c: IMAPClient, timeout: float) -> bool:
    poller = select.poll()
    poller.register(c.socket().fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _changed(responses: list[tuple[object, ...]]) -> bool:
    return any(len(r) >= 2 and r[1] in CHANGES for r in responses)
