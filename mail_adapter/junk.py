"""Out of Junk, done right (RFC 6154 SPECIAL-USE, RFC 6851 MOVE, RFC 4315 UIDPLUS, RFC 7162).

`JunkFolder(mailbox)` implements crm.domain.junk.JunkPort. Moving is made safe against a
connection that drops at any step: every attempt first looks for the message's Message-ID
in the inbox, so a copy that reached the server before the drop is never made twice, and
the original is only deleted once the copy is known to exist.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable

from imapclient import IMAPClient

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import MailboxUnavailable, MessageNotFound
from crm.domain.junk import Diagnosis, MoveOutcome, RescueOutcome, ScanState
from crm.domain.rules import email_domain
from mail_adapter.auth_results import verdict
from mail_adapter.mailbox import Mailbox
from mail_adapter.parsing import decode_header_value, parse_addresses
from mail_adapter.spam_headers import spam_report

JUNK = b"\\Junk"
INBOX = "INBOX"
DELETED = b"\\Deleted"
NOT_JUNK, JUNK_KEYWORD = b"$NotJunk", b"$Junk"
LEGACY_NOT_JUNK, LEGACY_JUNK = b"NonJunk", b"Junk"
FALLBACK_NAMES = ("Junk", "Spam", "Junk E-mail", "Junk Email", "Junk Mail", "迷惑メール", "[Gmail]/Spam", "INBOX/Junk", "INBOX.Junk", "INBOX/Spam", "INBOX.Spam", "Bulk Mail")
ATTEMPTS = 3
HEADERS_FOR_CHECK = b"BODY.PEEK[HEADER.FIELDS (FROM MESSAGE-ID AUTHENTICATION-RESULTS X-SPAM-STATUS X-SPAM-SCORE X-SPAM-FLAG X-SPAMD-RESULT X-RSPAMD-SCORE)]"


def find_junk_folder(client: IMAPClient) -> str | None:
    """The folder flagged \\Junk, else the first of the usual names that exists."""
    folders = client.list_folders()
    for flags, _delim, name in folders:
        if JUNK in flags:
            return str(name)
    names = {str(name).lower(): str(name) for _f, _d, name in folders}
    for candidate in FALLBACK_NAMES:
        if candidate.lower() in names:
            return names[candidate.lower()]
    return None


def _headers(raw: bytes) -> list[tuple[str, str]]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [(k.lower(), decode_header_value(str(v))) for k, v in msg.items()]


def _single_sender(headers: list[tuple[str, str]]) -> str | None:
    addresses = parse_addresses([v for k, v in headers if k == "from"])
    return addresses[0].email if len(addresses) == 1 and addresses[0].email else None


class JunkFolder:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.round_trips = 0  # counted for the benchmark

    # -- helpers ----------------------------------------------------------------------

    def _call(self, fn: Callable[..., object], *args: object, **kwargs: object) -> object:
        self.round_trips += 1
        return fn(*args, **kwargs)

    def _junk(self, client: IMAPClient, folder: str | None) -> str:
        name = folder or find_junk_folder(client)
        if not name:
            raise MessageNotFound("the mailbox has no Junk folder", code="folder_not_found")
        return name

    def _select(self, client: IMAPClient, folder: str, readonly: bool) -> dict[bytes, object]:
        self.round_trips += 1
        info: dict[bytes, object] = client.select_folder(folder, readonly=readonly)
        # Tell the mailbox what is selected now, so it neither reuses a stale selection nor
        # forgets to leave this one before a STATUS.
        self.mailbox.note_selected(folder, readonly, info)
        return info

    def _find(self, client: IMAPClient, message_id: str) -> int | None:
        self.round_trips += 1
        uids = client.search(["HEADER", "Message-ID", message_id])
        return int(max(uids)) if uids else None

    def _retrying(self, op: Callable[[IMAPClient], MoveOutcome]) -> MoveOutcome:
        """Run a write with its own recovery: each attempt starts from what the server holds."""
        for attempt in range(ATTEMPTS):
            try:
                return self.mailbox.run(op, retry=False)
            except MailboxUnavailable:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    # -- not spam ---------------------------------------------------------------------

    def not_spam(self, ref: MessageRef) -> MoveOutcome:
        # What one attempt learnt (the Message-ID, the sender) survives into the next: after a
        # drop that followed a completed MOVE, the UID is gone and only the Message-ID finds it.
        memo: dict[str, str | None] = {"message_id": ref.message_id, "sender": None}
        return self._retrying(lambda c: self._not_spam(c, ref, memo))

    def _not_spam(self, c: IMAPClient, ref: MessageRef, memo: dict[str, str | None]) -> MoveOutcome:
        junk = self._junk(c, ref.folder if ref.folder and ref.folder != INBOX else None)
        info = self._select(c, junk, readonly=False)
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
        message_id, sender, uid = memo["message_id"], memo["sender"], ref.uid
        if uid is not None and ref.uidvalidity not in (None, uidvalidity):
            uid = None  # the folder was recreated: fall back on the Message-ID
        if uid is None and message_id:
            uid = self._find(c, message_id)
        fetched = self._call(c.fetch, [uid], [HEADERS_FOR_CHECK]) if uid else {}
        if uid and uid in fetched:  # type: ignore[operator]
            headers = _headers(next(v for k, v in fetched[uid].items() if k.startswith(b"BODY")))  # type: ignore[index]
            sender = memo["sender"] = _single_sender(headers)
            message_id = memo["message_id"] = next((v.strip() for k, v in headers if k == "message-id"), None) or message_id
        elif not message_id:
            raise MessageNotFound("the message is not in the Junk folder")
        else:
            uid = None
        if not message_id:
            raise MessageNotFound("the message has no Message-ID: it cannot be moved safely", code="no_message_id")

        # Is a copy already in the inbox (moved earlier, or a copy made before a drop)?
        inbox = self._select(c, INBOX, readonly=False)
        inbox_validity = int(inbox.get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
        existing = self._find(c, message_id)
        if existing is not None:
            remains = False
            if uid is not None:  # the copy exists; the original must go
                self._select(c, junk, readonly=False)
                remains = self._delete(c, uid)
                self._select(c, INBOX, readonly=False)
            self._mark_not_junk(c, existing, inbox)
            return MoveOutcome(INBOX, existing, inbox_validity, "none" if uid is None else "copy_expunge", remains, message_id, sender)
        if uid is None:
            raise MessageNotFound("the message is neither in the Junk folder nor in the inbox")

        self._select(c, junk, readonly=False)
        if c.has_capability("MOVE"):
            self._call(c.move, [uid], INBOX)
            method, remains = "move", False
        else:
            self._call(c.copy, [uid], INBOX)
            remains = self._delete(c, uid)
            method = "copy_only" if remains else "copy_expunge"
        inbox = self._select(c, INBOX, readonly=False)
        new_uid = self._find(c, message_id)
        if new_uid is not None:
            self._mark_not_junk(c, new_uid, inbox)
        return MoveOutcome(INBOX, new_uid, int(inbox.get(b"UIDVALIDITY", 0)), method, remains, message_id, sender)  # type: ignore[call-overload]

    def _delete(self, c: IMAPClient, uid: int) -> bool:
        """Flag the original \\Deleted and expunge that UID only. Returns True when it stays
        (no UIDPLUS: a plain EXPUNGE would also remove what the user marked deleted)."""
        self._call(c.add_flags, [uid], [DELETED], silent=True)
        if c.has_capability("UIDPLUS"):
            self._call(c.uid_expunge, [uid])
            return False
        return True

    def _mark_not_junk(self, c: IMAPClient, uid: int, select_info: dict[bytes, object]) -> None:
        permanent = set(select_info.get(b"PERMANENTFLAGS", ()))  # type: ignore[call-overload]
        if not ({b"\\*", NOT_JUNK} & permanent):
            return
        self._call(c.remove_flags, [uid], [JUNK_KEYWORD, LEGACY_JUNK], silent=True)
        flags = [NOT_JUNK]
        if LEGACY_JUNK in permanent or LEGACY_NOT_JUNK in permanent:
            flags.append(LEGACY_NOT_JUNK)
        self._call(c.add_flags, [uid], flags, silent=True)

    # -- diagnosis ----------------------------------------------------------------------

    def diagnose(self, ref: MessageRef, ctx: ReadContext) -> Diagnosis:
        def op(c: IMAPClient) -> list[tuple[str, str]]:
            folder = ref.folder or self._junk(c, None)
            self.mailbox.select(c, folder)
            uid = ref.uid if ref.uid is not None else (Mailbox.find_by_message_id(c, ref.message_id) if ref.message_id else None)
            data = c.fetch([uid], [b"BODY.PEEK[HEADER]"]) if uid else {}
            if not uid or uid not in data:
                raise MessageNotFound("no such message")
            return _headers(data[uid][b"BODY[HEADER]"])

        return diagnose_headers(self.mailbox.run(op), ctx)

    # -- rescue -----------------------------------------------------------------------

    def rescue(self, senders: list[str], state: ScanState, ctx: ReadContext) -> RescueOutcome:
        """Move to the inbox the Junk mail of whitelisted senders that arrived since the last
        scan and really comes from them. `senders`: addresses, or "@domain" entries."""
        self.round_trips = 0
        found = self.mailbox.run(lambda c: self._scan(c, senders, state, ctx))
        candidates, new_state, searched = found
        moved, kept = [], []
        for uid, message_id, sender, diagnosis in candidates:
            if not diagnosis.authenticated:
                kept.append((sender, "not_authenticated"))
                continue
            moved.append(self.not_spam(MessageRef(new_state.folder or "", uid, new_state.uidvalidity, message_id)))
        return RescueOutcome(new_state, tuple(moved), tuple(kept), self.round_trips, searched)

    def _scan(self, c: IMAPClient, senders: list[str], state: ScanState, ctx: ReadContext):  # type: ignore[no-untyped-def]
        junk = state.folder or self._junk(c, None)
        selected = self.mailbox.selection
        if selected and selected[0] == junk:
            # Junk stayed selected since the last scan: STATUS would report this session's
            # stale view, and a new EXAMINE is the expensive step on a large folder. NOOP lets
            # the server announce new mail; the searches cover only the new UID range.
            self.round_trips += 2
            c.noop()
            uidvalidity = selected[2]
            since = state.last_uid if state.uidvalidity == uidvalidity else 0
            new = [u for u in c.search(["UID", f"{since + 1}:*"]) if u > since]
            new_state = ScanState(junk, uidvalidity, max(new, default=since), state.highestmodseq)
            if not new or not senders:
                return [], new_state, False
        else:
            self.round_trips += 1
            status = c.folder_status(junk, [b"UIDNEXT", b"UIDVALIDITY"] + ([b"HIGHESTMODSEQ"] if c.has_capability("CONDSTORE") else []))
            uidvalidity = int(status[b"UIDVALIDITY"])
            uidnext = int(status[b"UIDNEXT"])
            modseq = int(status[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in status else None
            since = state.last_uid if state.uidvalidity == uidvalidity else 0  # recreated folder: start over
            new_state = ScanState(junk, uidvalidity, uidnext - 1, modseq)
            if uidnext - 1 <= since or not senders:
                return [], new_state, False  # nothing arrived since the last scan: one round trip
            self._select(c, junk, readonly=True)
        self.round_trips += 1
        uids = [u for u in c.search(["UID", f"{since + 1}:*", *_or_from(senders)]) if u > since]
        if not uids:
            return [], new_state, True
        self.round_trips += 1
        data = c.fetch(uids, [HEADERS_FOR_CHECK])
        out = []
        for uid in sorted(data):
            headers = _headers(next(v for k, v in data[uid].items() if k.startswith(b"BODY")))
            sender = _single_sender(headers)
            if not sender or not _listed(sender, senders):
                continue  # FROM search is a substring match: check the real address
            message_id = next((v.strip() for k, v in headers if k == "message-id"), None)
            out.append((uid, message_id, sender, diagnose_headers(headers, ctx)))
        return out, new_state, True


def _listed(sender: str, senders: list[str]) -> bool:
    domain = email_domain(sender)
    return any(sender == s or (s.startswith("@") and (domain == s[1:] or domain.endswith("." + s[1:]))) for s in senders)


def _or_from(senders: list[str]) -> list[object]:
    """FROM a OR FROM b … as one IMAP search key (OR takes exactly two keys)."""
    keys: list[list[object]] = [["FROM", s] for s in senders]
    while len(keys) > 1:
        paired = []
        for i in range(0, len(keys) - 1, 2):
            paired.append(["OR", *keys[i], *keys[i + 1]])
        if len(keys) % 2:
            paired.append(keys[-1])
        keys = paired
    return keys[0]


def diagnose_headers(headers: list[tuple[str, str]], ctx: ReadContext) -> Diagnosis:
    sender = _single_sender(headers)
    auth = verdict([v for k, v in headers if k == "authentication-results"], email_domain(sender) if sender else None, ctx.trusted_authserv_ids)
    return Diagnosis(sender, auth.as_dict(), spam_report(headers).as_dict(), auth.authenticated)
