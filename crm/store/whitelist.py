"""Spam rescue tables: the sender whitelist (a user's own, or the organisation's), the audit
trail of rescue actions, and where each mailbox's rescue scan stopped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class WhitelistEntry(Base):
    """`value` is a normalised address or "@domain". `scope` is "org" or "user:<id>" (a string,
    so the unique constraint also holds for organisation-wide entries: NULLs never clash)."""

    __tablename__ = "whitelist_entries"
    __table_args__ = (UniqueConstraint("organisation_id", "scope", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    value: Mapped[str] = mapped_column(String(320))
    require_auth: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    source_message_id: Mapped[str | None] = mapped_column(String(998), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpamAudit(Base):
    __tablename__ = "spam_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # not_spam, whitelist_add, whitelist_remove, rescue_move, rescue_kept
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(998), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RescueState(Base):
    __tablename__ = "rescue_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_account_id: Mapped[int] = mapped_column(ForeignKey("mailbox_accounts.id", ondelete="CASCADE"), unique=True)
    folder: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
