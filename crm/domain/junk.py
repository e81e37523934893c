"""Spam rescue: the port the services use to move mail out of Junk and look for whitelisted
senders there, and the values it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from crm.domain.drafts import MessageRef, ReadContext


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """Where the message is now. method: "move" (UID MOVE), "copy_expunge" (UID COPY, STORE
    \\Deleted, UID EXPUNGE of that UID), "copy_only" (no UIDPLUS: the original stays, flagged
    \\Deleted, until the client expunges), or "none" (it was already in the inbox)."""

    folder: str
    uid: int | None
    uidvalidity: int | None
    method: str
    original_remains: bool
    message_id: str | None
    sender: str | None  # the single From address, or None when zero or several


@dataclass(frozen=True)
class Diagnosis:
    """Why a message is in spam: authentication as the receiving server saw it, and the
    filter's own report. `authentication` and `spam` are plain dicts for the API."""

    sender: str | None
    authentication: dict[str, object]
    spam: dict[str, object]
    authenticated: bool


@dataclass(frozen=True, slots=True)
class ScanState:
    """Where the last rescue scan of a Junk folder stopped (RFC 3501 UIDs, RFC 7162 MODSEQ)."""

    folder: str | None = None
    uidvalidity: int | None = None
    last_uid: int = 0
    highestmodseq: int | None = None


@dataclass(frozen=True)
class RescueOutcome:
    state: ScanState
    moved: tuple[MoveOutcome, ...] = ()
    kept: tuple[tuple[str, str], ...] = ()  # (sender, reason) of whitelisted mail left in Junk
    round_trips: int = 0
    searched: bool = True
    notes: tuple[str, ...] = field(default=())


class JunkPort(Protocol):
    def not_spam(self, ref: MessageRef) -> MoveOutcome: ...

    def diagnose(self, ref: MessageRef, ctx: ReadContext) -> Diagnosis: ...

    def rescue(self, senders: list[str], state: ScanState, ctx: ReadContext) -> RescueOutcome: ...
