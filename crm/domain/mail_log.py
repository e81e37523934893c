"""The mail log: a mail as logged onto CRM records, the port the services read mailboxes
through to log one, and the pure rules of what auto-log never logs.

A mail is stored once per organisation (keyed by its Message-ID) and linked to each record
it belongs to; the link is the record's timeline entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm.domain.drafts import MessageRef

RECORD_TYPES = ("lead", "contact", "account")
KINDS = ("mail", "status", "campaign", "meeting", "automatic_mail", "form_submission")


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment as the message's structure describes it (nothing fetched yet).
    `size` is the encoded size the server reports (RFC 3501 body-fld-octets)."""

    section: str
    name: str
    size: int
    content_type: str
    encoding: str | None = None


@dataclass(frozen=True)
class MailDraft:
    """What is kept of a mail: its headers, the text the rep sees (the sender's own words,
    quotes folded away) and the list of its attachments. `automated` holds the reasons it
    looks machine-sent (empty for a person's mail)."""

    message_id: str
    subject: str
    sender: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    attachments: tuple[AttachmentInfo, ...] = ()
    automated: tuple[str, ...] = ()
    ref: MessageRef | None = None
    bytes_fetched: int = 0

    @property
    def thread_key(self) -> str:
        return thread_key(self.message_id, self.in_reply_to, self.references)

    @property
    def addresses(self) -> set[str]:
        return {a for a in (self.sender, *self.to, *self.cc) if a}


@dataclass(frozen=True, slots=True)
class FolderState:
    """Where the last auto-log scan of one folder stopped: a changed UIDVALIDITY (RFC 3501
    §2.3.1.1) means the folder was recreated and is scanned again from the start."""

    folder: str
    uidvalidity: int | None = None
    last_uid: int = 0


@dataclass(frozen=True)
class FolderScan:
    """One scan of a folder: the mails of the wanted addresses above the last UID, and where
    the next scan starts. `replies`: the other new mails that answer some earlier mail
    (In-Reply-To/References), read when few mails came since the last scan; the services
    log those whose thread is already logged onto the same records."""

    state: FolderState
    mails: tuple[MailDraft, ...] = ()
    replies: tuple[MailDraft, ...] = ()
    round_trips: int = 0
    bytes_fetched: int = 0
    notes: tuple[str, ...] = field(default=())


class MailLogPort(Protocol):
    def read(self, ref: MessageRef) -> MailDraft:
        """The mail by folder + UID (UIDVALIDITY checked) or Message-ID: header, text parts
        and structure only. Raises MessageNotFound and the mailbox errors."""
        ...

    def stream_part(self, ref: MessageRef, section: str, encoding: str | None, sink: Callable[[bytes], None]) -> int:
        """Hand the decoded bytes of one body part to `sink`, chunk by chunk (partial fetches
        of that part only); returns the bytes the server sent."""
        ...

    def scan(self, state: FolderState, addresses: Iterable[str], *, sent: bool) -> FolderScan:
        """Mails above state.last_uid from (or, with `sent`, to/cc) one of `addresses` in
        the inbox or the folder flagged \\Sent."""
        ...


def bare_id(message_id: str | None) -> str:
    """A Message-ID without its angle brackets and surrounding space."""
    return (message_id or "").strip().strip("<>").strip()


def thread_key(message_id: str, in_reply_to: str | None, references: Iterable[str]) -> str:
    """The thread a mail belongs to: the first Message-ID of References (the thread's root,
    RFC 5322 §3.6.4), else In-Reply-To, else its own. Every mail of a thread whose client
    keeps References names the same root."""
    refs = [bare_id(r) for r in references if bare_id(r)]
    return refs[0] if refs else bare_id(in_reply_to) or bare_id(message_id)


def listed(address: str, entries: Iterable[str]) -> bool:
    """`address` is on a never-log list of addresses and "@domain"s (normalised)."""
    domain = "@" + address.rsplit("@", 1)[-1] if "@" in address else ""
    values = set(entries)
    return address in values or (bool(domain) and domain in values)


def own_address(address: str, own_domains: Iterable[str]) -> bool:
    domain = address.rsplit("@", 1)[-1] if "@" in address else ""
    return any(domain == d or domain.endswith("." + d) for d in own_domains)
