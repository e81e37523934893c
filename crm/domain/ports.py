"""What the services need from the outside world, as Protocols the adapters implement.

Services receive these objects; they never import `mail_adapter` (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SmtpConfig:
    """An organisation's submission server. `security`: "starttls", "tls" (implicit TLS,
    port 465) or "none" (loopback and tests only). No AUTH when `username` is None."""

    host: str
    port: int
    security: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


class SubmissionPort(Protocol):
    """One SMTP submission server (RFC 6409)."""

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """Submit the message's bytes unchanged; return the server's final reply text.
        Raises MailSendTemporary (4xx, or the connection lost before the reply to DATA) or
        MailSendRejected (5xx). Once the server answered 250 to DATA this returns, whatever
        happens to the connection afterwards."""
        ...
