"""Reading mail for the mail log (`MailLog(mailbox)` implements crm.domain.mail_log.MailLogPort).

A mail costs one or two round trips whatever its size: BODYSTRUCTURE + header + the first
4 KB of part 1 (for a short mail, its whole text), then, when that was not the text, its
text parts (capped, as for a draft). An attachment's bytes are read only on request, one part at a
time in CHUNK-sized partial fetches (`BODY.PEEK[2]<0.1048576>`, RFC 3501 §6.4.5), decoded as
they arrive and handed on: the whole message is never fetched, nor one part held at once.

The auto-log scan is one SEARCH per folder over the UIDs above the last scan
(`UID n:* OR FROM a …`), and nothing at all when the folder's UIDNEXT says no mail came.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any

from imapclient import IMAPClient

from crm.domain.drafts import MessageRef
from crm.domain.errors import MessageNotFound
from crm.domain.mail_log import AttachmentInfo, FolderScan, FolderState, MailDraft, bare_id
from mail_adapter.automated import automated_reasons
from mail_adapter.mailbox import Mailbox, SearchText, body_item, by_section, search, whole_first_part
from mail_adapter.parsing import BodyPart, ParsedMessage, parse_fetched
from mail_adapter.structure import MAX_TEXT_BYTES, NestedMessage, PartInfo, walk_structure
from mail_adapter.zones import own_text

SENT = b"\\Sent"
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "送信済み", "送信済みアイテム", "INBOX.Sent", "INBOX/Sent", "[Gmail]/Sent Mail")
CHUNK = 1024 * 1024
FETCH_BATCH = 200  # UIDs per FETCH command (a command line stays short)
SCAN_LIMIT = 2000
THREAD_WINDOW = 200  # new mails at most for which replies into logged threads are looked for  # mails one scan of one folder logs at most; the next scan goes on from there
MAX_TEXT_CHARS = 200_000
# The first bytes of part 1, asked for beside the structure: a short mail's text is part 1
# (a single part, or the plain half of an alternative), so most mails need no second FETCH;
# where part 1 is something else, or longer, at most this much was read for nothing.
FIRST_PART_BYTES = 4096
FIRST_PART_ITEM = body_item("1", FIRST_PART_BYTES)
_MSGID = re.compile(r"<[^<>\s]+>")
# What the log keeps and the automated-sender rules read; not the kilobytes of Received and
# DKIM lines a delivered mail carries.
HEADER_FIELDS = b"FROM SENDER REPLY-TO TO CC SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES CONTENT-TYPE LIST-ID LIST-UNSUBSCRIBE PRECEDENCE AUTO-SUBMITTED"
HEADER_ITEM = b"BODY.PEEK[HEADER.FIELDS (" + HEADER_FIELDS + b")]"


class MailLog:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    # -- one mail -------------------------------------------------------------------

    def read(self, ref: MessageRef) -> MailDraft:
        def op(c: IMAPClient) -> MailDraft:
            folder, uidvalidity, uid = self.mailbox.resolve(c, ref)
            drafts = _read_many(c, [uid], folder, uidvalidity)
            if uid not in drafts:
                c.noop()  # mail that arrived since the folder was selected shows after this
                drafts = _read_many(c, [uid], folder, uidvalidity)
            if uid not in drafts:
                raise MessageNotFound(f"no message with UID {uid} in {folder}")
            return drafts[uid]

        return self.mailbox.run(op)

    def stream_part(self, ref: MessageRef, section: str, encoding: str | None, sink: Callable[[bytes], None]) -> int:
        """See MailLogPort. A connection dropped midway is resumed at the offset reached (the
        mailbox reconnects once): no chunk is handed on twice."""
        decoder = _Decoder(encoding)
        progress = {"offset": 0, "fetched": 0}

        def op(c: IMAPClient) -> None:
            _folder, _validity, uid = self.mailbox.resolve(c, ref)
            while True:
                offset = progress["offset"]
                answer = c.fetch([uid], [f"BODY.PEEK[{section}]<{offset}.{CHUNK}>".encode()])
                data = by_section(answer.get(uid, {})).get(section)
                if data is None:
                    if offset == 0:
                        raise MessageNotFound(f"no part {section} in message {uid}")
                    data = b""
                progress["offset"] += len(data)
                progress["fetched"] += len(data)
                sink(decoder.feed(data))
                if len(data) < CHUNK:
                    return

        self.mailbox.run(op)
        tail = decoder.finish()
        if tail:
            sink(tail)
        return progress["fetched"]

    # -- the auto-log scan ------------------------------------------------------------

    def scan(self, state: FolderState, addresses: Iterable[str], *, sent: bool) -> FolderScan:
        wanted = sorted({a for a in addresses if a})

        def op(c: IMAPClient) -> FolderScan:
            folder = sent_folder(self.mailbox, c) if sent else "INBOX"
            if folder is None:
                return FolderScan(state, notes=("no_sent_folder",))
            info = self.mailbox.select_anew(c, folder, readonly=True)
            validity = int(info.get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
            uidnext = int(info.get(b"UIDNEXT", 0) or 0)  # type: ignore[call-overload]
            since = state.last_uid if state.uidvalidity == validity and state.folder == folder else 0
            top = uidnext - 1 if uidnext else None
            if not wanted or (top is not None and top <= since):
                return FolderScan(FolderState(folder, validity, max(since, top or 0)), round_trips=1)
            # Incoming mail is from the person, sent mail to them: one header each to match
            # (a search over every header of 10,000 mails costs twice one over From).
            uids = sorted(u for u in search(c, ["UID", f"{since + 1}:*", *any_of(wanted, ("TO", "CC") if sent else ("FROM",))]) if u > since)
            batch, rest = uids[:SCAN_LIMIT], uids[SCAN_LIMIT:]
            fetches: list[int] = []  # one item per FETCH (or further SEARCH) sent, for the round trips reported
            drafts = _read_many(c, batch, folder, validity, fetches)
            mails = tuple(drafts[u] for u in batch if u in drafts and drafts[u].addresses & set(wanted))
            replies: tuple[MailDraft, ...] = ()
            if since and top is not None and top - since <= THREAD_WINDOW:
                # A few new mails: the replies among them may continue a logged thread
                # without naming the person (a colleague of theirs answering, say).
                fetches.append(1)  # the SEARCH for replies
                others = [u for u in search(c, ["UID", f"{since + 1}:*", "OR", "HEADER", "In-Reply-To", SearchText("@"), "HEADER", "References", SearchText("@")]) if u > since and u not in drafts]
                replies = tuple(_read_many(c, others, folder, validity, fetches).values()) if others else ()
            # Where the next scan starts: after every UID this one covered, so mail that
            # matched nothing is never looked at again.
            last = batch[-1] if rest else max(since, top or 0, uids[-1] if uids else 0)
            fetched = sum(d.bytes_fetched for d in drafts.values())
            return FolderScan(FolderState(folder, validity, last), mails, replies, round_trips=2 + len(fetches), bytes_fetched=fetched)

        return self.mailbox.run(op)


def sent_folder(mailbox: Mailbox, c: IMAPClient) -> str | None:
    """The folder flagged \\Sent (RFC 6154), else the first of the usual names."""
    listing = mailbox.folders(c)
    for flags, _delim, name in listing:
        if SENT in flags:
            return name
    names = {n.lower(): n for _f, _d, n in listing}
    return next((names[n.lower()] for n in SENT_NAMES if n.lower() in names), None)


def any_of(addresses: Sequence[str], fields: Sequence[str]) -> list[str]:
    """`fields` (FROM, TO, CC) of any of `addresses`, as one search key in prefix notation
    (OR takes two keys), balanced so that many addresses nest only log2(n) deep."""
    keys = [[f, SearchText(a)] for a in addresses for f in fields]
    return _balanced(keys)


def _balanced(keys: list[list[str]]) -> list[str]:
    if len(keys) == 1:
        return keys[0]
    half = len(keys) // 2
    return ["OR", *_balanced(keys[:half]), *_balanced(keys[half:])]


def _read_many(c: IMAPClient, uids: list[int], folder: str, uidvalidity: int, fetches: list[int] | None = None) -> dict[int, MailDraft]:
    """Drafts of `uids` in the selected folder: one FETCH of structure + header + the start
    of part 1 per batch, then, for the mails whose text that was not, one FETCH per set of
    messages that want the same text sections."""
    out: dict[int, MailDraft] = {}
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        first = c.fetch(batch, [b"BODYSTRUCTURE", HEADER_ITEM, FIRST_PART_ITEM])
        if fetches is not None:
            fetches.append(1)
        plans: dict[int, tuple[bytes, list[PartInfo], list[AttachmentInfo]]] = {}
        bodies: dict[int, dict[str, bytes]] = {}
        sent: dict[int, int] = {}  # bytes of part 1 and of the text FETCH, per mail
        for uid, data in first.items():
            header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER") and isinstance(v, bytes)), b"")
            texts, attachments = _plan(data.get(b"BODYSTRUCTURE"))
            plans[int(uid)] = (header, texts, attachments)
            sent[int(uid)] = len(by_section(data).get("1", b""))
            bodies[int(uid)] = whole_first_part(data, FIRST_PART_BYTES)  # nothing more to fetch for it
        groups: dict[tuple[str, ...], list[int]] = {}
        for uid, (_h, texts, _a) in plans.items():
            rest = tuple(p.section for p in texts if p.section not in bodies[uid])
            if rest:
                groups.setdefault(rest, []).append(uid)
        for sections, members in groups.items():
            answer = c.fetch(members, [body_item(s, MAX_TEXT_BYTES) for s in sections])
            if fetches is not None:
                fetches.append(1)
            for uid, data in answer.items():
                got = by_section(data)
                bodies.setdefault(int(uid), {}).update(got)
                sent[int(uid)] = sent.get(int(uid), 0) + sum(len(v) for v in got.values())
        for uid, (header, texts, attachments) in plans.items():
            got = bodies.get(uid, {})
            parts = [BodyPart(p.content_type, got.get(p.section, b""), p.charset, p.encoding, p.filename, p.method, p.section) for p in texts]
            parsed = parse_fetched(header, parts)
            fetched = len(header) + sent.get(uid, 0)
            out[uid] = draft_of(parsed, tuple(attachments), MessageRef(folder, uid, uidvalidity, parsed.message_id), fetched)
    return out


def _plan(structure: Any) -> tuple[list[PartInfo], list[AttachmentInfo]]:
    """The sender's text parts (outside attached messages) and every attachment."""
    texts: list[PartInfo] = []
    attachments: list[AttachmentInfo] = []
    for item in walk_structure(structure):
        if isinstance(item, NestedMessage):
            if item.nested == 1:
                attachments.append(AttachmentInfo(item.section, "message.eml", 0, "message/rfc822"))
            continue
        if item.nested:
            continue
        if item.content_type in ("text/plain", "text/html") and not item.attachment and not item.filename:
            texts.append(item)
        elif item.attachment or item.filename:
            attachments.append(AttachmentInfo(item.section, item.filename or f"part-{item.section}", item.size, item.content_type, item.encoding))
    plain = [p for p in texts if p.content_type == "text/plain"]
    return (plain or texts)[:1], attachments


def draft_of(parsed: ParsedMessage, attachments: tuple[AttachmentInfo, ...], ref: MessageRef | None, fetched: int) -> MailDraft:
    refs = tuple(_MSGID.findall(parsed.header("references") or ""))
    reply = _MSGID.findall(parsed.header("in-reply-to") or "")
    date = parsed.date.astimezone(UTC) if parsed.date and parsed.date.tzinfo else parsed.date.replace(tzinfo=UTC) if parsed.date else None
    return MailDraft(
        message_id=bare_id(parsed.message_id) or "",
        subject=parsed.subject,
        sender=parsed.from_[0].email if parsed.from_ else None,
        to=tuple(a.email for a in parsed.to if a.email),
        cc=tuple(a.email for a in parsed.cc if a.email),
        date=date,
        in_reply_to=bare_id(reply[0]) if reply else None,
        references=tuple(bare_id(r) for r in refs),
        text=own_text(parsed.text)[:MAX_TEXT_CHARS],
        attachments=attachments,
        automated=tuple(automated_reasons(parsed)),
        ref=ref,
        bytes_fetched=fetched,
    )


class _Decoder:
    """Content-Transfer-Encoding undone chunk by chunk: a base64 quantum or a quoted-printable
    line cut by a chunk boundary waits for the next chunk."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = (encoding or "").lower()
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            text = self.rest + re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
            cut = len(text) - len(text) % 4
            self.rest = text[cut:]
            try:
                return base64.b64decode(text[:cut])
            except binascii.Error:
                return b""
        if self.encoding == "quoted-printable":
            text = self.rest + data
            cut = text.rfind(b"\n") + 1
            self.rest = text[cut:]
            return quopri.decodestring(text[:cut])
        return data

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        if not rest:
            return b""
        if self.encoding == "base64":
            try:
                return base64.b64decode(rest + b"=" * (-len(rest) % 4))
            except binascii.Error:
                return b""
        if self.encoding == "quoted-printable":
            return quopri.decodestring(rest)
        return rest
