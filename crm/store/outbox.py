"""The outbox of automatic mail, the suppression list, the daily quota counters and the
organisation's SMTP submission settings (migration mail_0001).

`OutboxMail` is one mail, persisted (bytes and Message-ID) before any attempt to send it.
`MailQuotaDay` counts what was reserved per organisation and local day: a mail is sent only
after `reserve_quota` took one unit by a conditional UPDATE, which both databases run
atomically (SQLite: one writer at a time; PostgreSQL: the row lock re-checks the WHERE).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow
from crm.store.db import dialect_insert

KINDS = ("rule", "form_reply", "bulk", "scheduled", "itip_reply")
# The rep's own answer to an invitation (crm.services.outbox.enqueue_reply): sent through the
# rep's calendar SMTP settings and, like the mail a rep sends by hand, not counted in the
# organisation's daily limit.
UNCOUNTED_KINDS = ("itip_reply",)
# queued → sending → sent; sending → queued (retry) | failed; queued → waiting_quota → sending.
# "unconfirmed": found in "sending" after a crash; never resent (it may have been accepted).
STATUSES = ("queued", "sending", "sent", "failed", "skipped", "waiting_quota", "unconfirmed")
DUE_STATUSES = ("queued", "waiting_quota")


class OutboxMail(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # One lead is never mailed twice by one rule: the caller's key, e.g. "rule:7:lead:42".
        UniqueConstraint("organisation_id", "dedupe_key"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_org_lead", "organisation_id", "lead_id"),
        Index("ix_outbox_org_kind_source", "organisation_id", "kind", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the rule, form or campaign
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), nullable=True)
    to_address: Mapped[str] = mapped_column(String(320))
    address_norm: Mapped[str | None] = mapped_column(String(320), nullable=True)
    from_address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998), nullable=True, unique=True)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    unsubscribe_token: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    quota_day: Mapped[str | None] = mapped_column(String(10), nullable=True)  # the local day it counts on
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailSuppression(Base):
    """An address the organisation never mails automatically again: "unsubscribed" or "hard_bounce"."""

    __tablename__ = "mail_suppressions"
    __table_args__ = (UniqueConstraint("organisation_id", "address_norm"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    address_norm: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(32))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailQuotaDay(Base):
    """Units reserved on one local day (`day` is its ISO date); `form_used` counts the
    auto-replies among them (they may take only a share of the limit)."""

    __tablename__ = "mail_quota_days"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    form_used: Mapped[int] = mapped_column(Integer, default=0)


class SmtpSettings(Base):
    """The organisation's submission server. `secret_encrypted`: the password, Fernet-encrypted
    like mailbox passwords (crm.services.secrets); never returned by the API nor logged."""

    __tablename__ = "smtp_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16))  # "starttls" | "tls" | "none"
    username: Mapped[str | None] = mapped_column(String(320), nullable=True)
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    from_address: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    daily_limit: Mapped[int] = mapped_column(Integer, default=500)
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    # The backend's public https base (the one-click unsubscribe link in every mail).
    public_url: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def reserve_quota(session: Session, organisation_id: int, day: str, limit: int, *, form_reply: bool, form_limit: int) -> bool:
    """Take one unit of the day's quota, or return False when none is left. Exact under any
    number of concurrent callers: the row exists first (insert, ignoring a conflict), then one
    conditional UPDATE takes the unit only while `used < limit`."""
    session.execute(dialect_insert(session, MailQuotaDay).values(organisation_id=organisation_id, day=day, used=0, form_used=0).on_conflict_do_nothing())
    query = update(MailQuotaDay).where(MailQuotaDay.organisation_id == organisation_id, MailQuotaDay.day == day, MailQuotaDay.used < limit)
    values = {"used": MailQuotaDay.used + 1}
    if form_reply:
        query = query.where(MailQuotaDay.form_used < form_limit)
        values["form_used"] = MailQuotaDay.form_used + 1
    result = session.execute(query.values(values).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_quota(session: Session, organisation_id: int, day: str, *, form_reply: bool) -> None:
    """Give back a unit whose mail the server did not accept (retry later, or refused)."""
    values = {"used": MailQuotaDay.used - 1}
    if form_reply:
        values["form_used"] = MailQuotaDay.form_used - 1
    session.execute(
        update(MailQuotaDay)
        .where(MailQuotaDay.organisation_id == organisation_id, MailQuotaDay.day == day, MailQuotaDay.used > 0)
        .values(values)
        .execution_options(synchronize_session=False)
    )
