"""Out of Junk, done right (RFC 6154 SPECIAL-USE, RFC 6851 MOVE, RFC 4315 UIDPLUS, RFC 7162).

`JunkFolder(mailbox)` implements crm.domain.junk.JunkPort. Moving is made safe against a
connection that drops at any step: every attempt first looks for the message in the inbox,
so a copy that reached the server before the drop is never made twice, and the original is
only deleted once its copy is proven present: the server's COPYUID, or an inbox message
with the same fingerprint (size, whole header block, body digest). A Message-ID alone
proves nothing, since the sender chooses it: an inbox message that has the Message-ID but
not the fingerprint is a collision, reported as Conflict with nothing moved or deleted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from imapclient import IMAPClient

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import Conflict, MailboxUnavailable, MessageNotFound
from crm.domain.junk import Diagnosis, MoveOutcome, RescueOutcome, ScanState
from crm.domain.rules import email_domain
from mail_adapter.junk_diagnosis import diagnose_headers, single_sender
from mail_adapter.mailbox import Mailbox, SearchText, search
from mail_adapter.parsing import parse_header_block

JUNK = b"\\Junk"
INBOX = "INBOX"
DELETED = b"\\Deleted"
NOT_JUNK, JUNK_KEYWORD = b"$NotJunk", b"$Junk"
LEGACY_NOT_JUNK, LEGACY_JUNK = b"NonJunk", b"Junk"
FALLBACK_NAMES = ("Junk", "Spam", "Junk E-mail", "Junk Email", "Junk Mail", "迷惑メール", "[Gmail]/Spam", "INBOX/Junk", "INBOX.Junk", "INBOX/Spam", "INBOX.Spam", "Bulk Mail")
ATTEMPTS = 3
HEADERS_FOR_CHECK = b"BODY.PEEK[HEADER.FIELDS (FROM MESSAGE-ID AUTHENTICATION-RESULTS X-SPAM-STATUS X-SPAM-SCORE X-SPAM-FLAG X-SPAMD-RESULT X-RSPAMD-SCORE)]"
BODY_SAMPLE = 64 * 1024  # the body digest covers this much; with the size and the header it tells copies apart
FINGERPRINT_ITEMS = [b"RFC822.SIZE", b"BODY.PEEK[HEADER]", f"BODY.PEEK[TEXT]<0.{BODY_SAMPLE}>".encode()]
MAX_CANDIDATES = 20  # inbox messages sharing one Message-ID compared at most
COPYUID = re.compile(rb"\[COPYUID \d+ \d+ (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What makes an inbox message the copy of a Junk message: RFC822.SIZE, a digest of the
    whole header block (Date, From, Message-ID, Received… as the server stores them) and of
    the first BODY_SAMPLE bytes of the body. COPY and MOVE keep a message byte for byte."""

    size: int
    header: str
    body: str


def _fingerprint(item: dict[bytes, object]) -> Fingerprint | None:
    size = item.get(b"RFC822.SIZE")
    header = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), None)
    body = next((v for k, v in item.items() if k.startswith(b"BODY[TEXT")), b"")
    if not isinstance(size, int) or not isinstance(header, bytes):
        return None
    return Fingerprint(size, hashlib.sha256(header).hexdigest(), hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest())


@dataclass
class _Memo:
    """What one attempt learnt about the original, kept for the next one: after a drop that
    followed a completed MOVE, the UID is gone and only these find and prove the copy."""

    message_id: str | None
    sender: str | None = None
    fingerprint: Fingerprint | None = None


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
    return list(parse_header_block(raw))


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
        # Through the mailbox, so it neither reuses a stale selection nor forgets to leave
        # this one before a STATUS.
        return self.mailbox.select_anew(client, folder, readonly=readonly)

    def _find(self, client: IMAPClient, message_id: str) -> list[int]:
        """UIDs of the selected folder's messages with this Message-ID, newest first."""
        self.round_trips += 1
        return sorted(search(client, ["HEADER", "Message-ID", SearchText(message_id)]), reverse=True)

    def _fingerprints(self, client: IMAPClient, uids: list[int]) -> dict[int, tuple[Fingerprint, bytes]]:
        """uid → (fingerprint, header block) of those still in the selected folder."""
        if not uids:
            return {}
        fetched = self._call(client.fetch, uids[:MAX_CANDIDATES], FINGERPRINT_ITEMS)
        out = {}
        for uid, item in fetched.items():  # type: ignore[attr-defined]
            found = _fingerprint(item)
            if found is not None and int(uid) in uids:
                out[int(uid)] = (found, next(v for k, v in item.items() if k.startswith(b"BODY[HEADER")))
        return out

    def _copy_in_inbox(self, client: IMAPClient, message_id: str, fingerprint: Fingerprint) -> tuple[int | None, bool]:
        """(UID of the inbox copy proven by its fingerprint, whether other inbox messages
        carry the same Message-ID). The inbox is selected."""
        candidates = self._find(client, message_id)
        prints = self._fingerprints(client, candidates)
        copy = next((uid for uid in candidates if uid in prints and prints[uid][0] == fingerprint), None)
        return copy, any(uid != copy for uid in candidates)

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
        memo = _Memo(ref.message_id)
        return self._retrying(lambda c: self._not_spam(c, ref, memo))

    def _not_spam(self, c: IMAPClient, ref: MessageRef, memo: _Memo) -> MoveOutcome:
        junk = self._junk(c, ref.folder if ref.folder and ref.folder != INBOX else None)
        info = self._select(c, junk, readonly=False)
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
        uid = ref.uid
        if uid is not None and ref.uidvalidity not in (None, uidvalidity):
            uid = None  # the folder was recreated: fall back on the Message-ID
        if uid is None and memo.message_id:
            uid = next(iter(self._find(c, memo.message_id)), None)
        original = self._fingerprints(c, [uid]).get(uid) if uid else None
        if original is not None:
            memo.fingerprint = original[0]
            headers = _headers(original[1])
            memo.sender = single_sender(headers)
            memo.message_id = next((v.strip() for k, v in headers if k == "message-id"), None) or memo.message_id
        elif not memo.message_id:
            raise MessageNotFound("the message is not in the Junk folder")
        else:
            uid = None
        message_id = memo.message_id
        if not message_id:
            raise MessageNotFound("the message has no Message-ID: it cannot be moved safely", code="no_message_id")

        # Is a copy already in the inbox (moved earlier, or copied before a drop)?
        inbox = self._select(c, INBOX, readonly=False)
        inbox_validity = int(inbox.get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
        if memo.fingerprint is None:
            # This call never saw the original, so it deletes nothing: the message is in
            # the inbox already (moved by an earlier call), or nowhere.
            existing = next(iter(self._find(c, message_id)), None)
            if existing is None:
                raise MessageNotFound("the message is neither in the Junk folder nor in the inbox")
            self._mark_not_junk(c, existing, inbox)
            return MoveOutcome(INBOX, existing, inbox_validity, "none", False, message_id, None)
        copy, others = self._copy_in_inbox(c, message_id, memo.fingerprint)
        if copy is not None:
            remains = False
            if uid is not None:  # the copy is proven; the original must go
                self._select(c, junk, readonly=False)
                remains = self._delete(c, uid)
                self._select(c, INBOX, readonly=False)
            self._mark_not_junk(c, copy, inbox)
            return MoveOutcome(INBOX, copy, inbox_validity, "none" if uid is None else "copy_expunge", remains, message_id, memo.sender)
        if uid is None:
            raise MessageNotFound("the message is neither in the Junk folder nor in the inbox")
        if others:
            raise Conflict(
                "a different message with the same Message-ID is already in the inbox: nothing was moved, deleted or whitelisted",
                field="message_id", code="message_id_collision",
            )

        self._select(c, junk, readonly=False)
        if c.has_capability("MOVE"):
            self._call(c.move, [uid], INBOX)  # atomic: nothing to prove
            method, remains, new_uid = "move", False, None
        else:
            answer = self._call(c.copy, [uid], INBOX)
            new_uid = _copyuid(answer)
            if new_uid is None:  # no UIDPLUS, no COPYUID: the fingerprint proves the copy
                self._select(c, INBOX, readonly=False)
                new_uid = self._copy_in_inbox(c, message_id, memo.fingerprint)[0]
                self._select(c, junk, readonly=False)
            if new_uid is None:
                method, remains = "copy_only", True  # copied, unproven: the original stays untouched
            else:
                remains = self._delete(c, uid)
                method = "copy_only" if remains else "copy_expunge"
        inbox = self._select(c, INBOX, readonly=False)
        if new_uid is None:
            new_uid = self._copy_in_inbox(c, message_id, memo.fingerprint)[0]
        if new_uid is not None:
            self._mark_not_junk(c, new_uid, inbox)
        return MoveOutcome(INBOX, new_uid, int(inbox.get(b"UIDVALIDITY", 0)), method, remains, message_id, memo.sender)  # type: ignore[call-overload]

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
            uid = ref.uid if ref.uid is not None else (self.mailbox.find_by_message_id(c, ref.message_id) if ref.message_id else None)
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
            try:
                moved.append(self.not_spam(MessageRef(new_state.folder or "", uid, new_state.uidvalidity, message_id)))
            except Conflict as exc:  # another inbox message has its Message-ID: left in Junk, reported
                kept.append((sender, exc.code))
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
            new = [u for u in search(c, ["UID", f"{since + 1}:*"]) if u > since]
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
        uids = [u for u in search(c, ["UID", f"{since + 1}:*", *_or_from(senders)]) if u > since]
        if not uids:
            return [], new_state, True
        self.round_trips += 1
        data = c.fetch(uids, [HEADERS_FOR_CHECK])
        out = []
        for uid in sorted(data):
            headers = _headers(next(v for k, v in data[uid].items() if k.startswith(b"BODY")))
            sender = single_sender(headers)
            if not sender or not _listed(sender, senders):
                continue  # FROM search is a substring match: check the real address
            message_id = next((v.strip() for k, v in headers if k == "message-id"), None)
            out.append((uid, message_id, sender, diagnose_headers(headers, ctx)))
        return out, new_state, True


def _listed(sender: str, senders: list[str]) -> bool:
    domain = email_domain(sender)
    return any(sender == s or (s.startswith("@") and (domain == s[1:] or domain.endswith("." + s[1:]))) for s in senders)


def _or_from(senders: list[str]) -> list[str]:
    """FROM a OR FROM b … as one IMAP search key, in prefix notation (OR takes exactly two
    keys), balanced so that a long whitelist nests only log2(n) deep."""
    if len(senders) == 1:
        return ["FROM", SearchText(senders[0])]
    half = len(senders) // 2
    return ["OR", *_or_from(senders[:half]), *_or_from(senders[half:])]


def _copyuid(answer: object) -> int | None:
    """The new UID from a COPY's tagged answer `[COPYUID validity src dst]` (RFC 4315)."""
    found = COPYUID.search(answer) if isinstance(answer, bytes) else None
    return int(found[1]) if found else None

