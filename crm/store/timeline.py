"""Timeline and mail log tables.

A logged mail is stored once per organisation (`logged_mails`, unique Message-ID); each
record it belongs to gets one timeline entry pointing at it (`source_key` "mail:<id>",
unique per record), so logging twice changes nothing and a mail to two prospects is one
mail with two entries. Records are named by (record_type, record_id) without a foreign key:
an entry belongs to a lead, a contact or an account alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class LoggedMail(Base):
    __tablename__ = "logged_mails"
    __table_args__ = (UniqueConstraint("organisation_id", "message_key"), Index("ix_logged_mails_org_thread", "organisation_id", "thread_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    message_key: Mapped[str] = mapped_column(String(998))  # the Message-ID without brackets
    thread_key: Mapped[str] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str | None] = mapped_column(String(320), nullable=True)
    to: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998), nullable=True)
    refs: Mapped[list[str]] = mapped_column(JSON, default=list)  # References, in order
    text: Mapped[str] = mapped_column(Text, default="")
    logged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailAttachment(Base):
    """An attachment's name and size; `stored` when its bytes were kept (an admin setting),
    in `mail_attachment_chunks`, written chunk by chunk as IMAP delivered them."""

    __tablename__ = "mail_attachments"
    __table_args__ = (UniqueConstraint("mail_id", "section"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(ForeignKey("logged_mails.id", ondelete="CASCADE"), index=True)
    section: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)  # decoded bytes once stored, else the encoded size reported
    stored: Mapped[bool] = mapped_column(Boolean, default=False)


class MailAttachmentChunk(Base):
    __tablename__ = "mail_attachment_chunks"
    __table_args__ = (UniqueConstraint("attachment_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("mail_attachments.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TimelineEntry(Base):
    """One event of a record's history. `source_key` makes feeding idempotent ("mail:<id>",
    "meeting:<event id>", or a caller's own key); None for events that are never repeated."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        UniqueConstraint("record_type", "record_id", "source_key"),
        # Keyset paging of one record's timeline, newest first: (at, id) below a cursor.
        Index("ix_timeline_entries_record_at", "organisation_id", "record_type", "record_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    record_type: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(String(500), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mail_id: Mapped[int | None] = mapped_column(ForeignKey("logged_mails.id", ondelete="CASCADE"), nullable=True, index=True)
    source_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AutoLogRecord(Base):
    """"Log every mail with this person", turned on by one rep for one lead or contact:
    that rep's mailbox is scanned for `address`."""

    __tablename__ = "auto_log_records"
    __table_args__ = (UniqueConstraint("user_id", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    record_type: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AutoLogState(Base):
    """Where the auto-log scan of one folder of one mailbox stopped."""

    __tablename__ = "auto_log_states"
    __table_args__ = (UniqueConstraint("mailbox_account_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_account_id: Mapped[int] = mapped_column(ForeignKey("mailbox_accounts.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # "inbox" | "sent"
    folder: Mapped[str] = mapped_column(String(1000))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # The auto-log addresses the last scan searched for: a newly added one is searched
    # over the whole folder once, not only above last_uid.
    addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NeverLogEntry(Base):
    """An address or "@domain" auto-log never logs. `scope` is "org" (admins only) or
    "user:<id>" (that rep's own, invisible to the others)."""

    __tablename__ = "never_log_entries"
    __table_args__ = (UniqueConstraint("organisation_id", "scope", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(320))
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailLogSettings(Base):
    """Per organisation (admin): keep attachment bytes, and log mail with the org's own
    domains (internal threads) — both off by default."""

    __tablename__ = "mail_log_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    store_attachments: Mapped[bool] = mapped_column(Boolean, default=False)
    log_internal: Mapped[bool] = mapped_column(Boolean, default=False)
    max_attachment_bytes: Mapped[int] = mapped_column(BigInteger, default=50 * 1024 * 1024)
