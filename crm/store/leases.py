"""Mailbox scan leases: at most one scan of a mailbox at a time, across threads and worker
processes. A row per mailbox names its holder and when the lease ends; it is taken with one
conditional UPDATE (or the INSERT of the first row), so two takers never both win, and it
expires, so the lease of a worker killed mid-scan is taken over once `expires_at` passed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class MailboxLease(Base):
    __tablename__ = "mailbox_leases"

    mailbox_account_id: Mapped[int] = mapped_column(ForeignKey("mailbox_accounts.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def take(session: Session, mailbox_account_id: int, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Take (or renew) the lease for `seconds`; False when another holder has it unexpired.
    The caller commits at once: the lease is only visible to others once committed."""
    now = now or utcnow()
    until = now + timedelta(seconds=seconds)
    table = MailboxLease.__table__
    taken = session.execute(
        update(table)
        .where(table.c.mailbox_account_id == mailbox_account_id, or_(table.c.holder == holder, table.c.expires_at <= now))
        .values(holder=holder, expires_at=until)
    ).rowcount  # type: ignore[attr-defined]
    if taken:
        return True
    try:
        with session.begin_nested():  # the first lease of this mailbox; a racing INSERT loses here
            session.execute(insert(table).values(mailbox_account_id=mailbox_account_id, holder=holder, expires_at=until))
    except IntegrityError:
        return False  # someone holds it (or the mailbox was deleted meanwhile)
    return True


def release(session: Session, mailbox_account_id: int, holder: str) -> None:
    """End the lease now, if it is still ours (an expired one may belong to another by now)."""
    table = MailboxLease.__table__
    session.execute(update(table).where(table.c.mailbox_account_id == mailbox_account_id, table.c.holder == holder).values(expires_at=utcnow() - timedelta(seconds=1)))
