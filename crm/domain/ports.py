"""What the services need from the outside world, as Protocols the adapters implement.

Services receive these objects; they never import `mail_adapter` (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from crm.domain.drafts import LeadDraft, MessageRef, ReadContext


@dataclass(frozen=True, slots=True)
class CalendarObject:
    """One iCalendar object carried by a message, as sent (bytes) with its MIME method."""

    data: bytes
    method: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class OpenedMessage:
    """The message the user has open, read into what the use cases need.

    ref: where it was found (folder, uid and uidvalidity filled in by the adapter).
    sender: the normalised From address (None when the message has none).
    headers: every header (lower-case name, decoded value), topmost first; spam diagnosis
      and authentication checks read them.
    bytes_fetched: what the IMAP server sent for it (the benchmark reports it).
    """

    ref: MessageRef
    message_id: str | None
    subject: str
    sender: str | None
    draft: LeadDraft
    calendars: tuple[CalendarObject, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    bytes_fetched: int = 0


class MailboxPort(Protocol):
    """A user's mailbox, reached through one pooled, authenticated connection."""

    def open_message(self, ref: MessageRef, ctx: ReadContext) -> OpenedMessage:
        """Find the message by folder + UID (checking UIDVALIDITY) or by Message-ID and read
        only what a draft needs. Raises MessageNotFound, MailboxAuthError, MailboxUnavailable."""
        ...

    def check(self) -> list[str]:
        """Log in (or reuse the connection) and return the folder names; raises like above."""
        ...
