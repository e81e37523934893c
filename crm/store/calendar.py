"""The CRM calendar: tracked invitations and the events they became, per user.

One row per (user, UID, instance): the master has instance "" and an overridden or
cancelled occurrence has its RECURRENCE-ID as an ISO instant. `in_calendar` says whether the
row is shown in the CRM calendar (the user accepted and their destination is "crm"); rows
are kept either way so later updates and cancellations find them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class CalendarSetting(Base):
    __tablename__ = "calendar_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    destination: Mapped[str] = mapped_column(String(16), default="crm")  # "crm" | "none"
    send_replies: Mapped[bool] = mapped_column(Boolean, default=True)
    smtp_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    smtp_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    smtp_security: Mapped[str | None] = mapped_column(String(16), nullable=True)  # ssl | starttls | plain (loopback)
    smtp_username: Mapped[str | None] = mapped_column(String(320), nullable=True)
    smtp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    calendar_last_uid: Mapped[int] = mapped_column(BigInteger, default=0)  # inbox scan position
    calendar_uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class CalendarEvent(Base):
    __tablename__ = "calendar_events"
    __table_args__ = (UniqueConstraint("user_id", "uid", "instance"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(512))
    instance: Mapped[str] = mapped_column(String(40), default="")
    range_future: Mapped[bool] = mapped_column(Boolean, default=False)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    dtstamp: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    organizer: Mapped[str | None] = mapped_column(String(320), nullable=True)
    sent_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    summary: Mapped[str] = mapped_column(String(1000), default="")
    location: Mapped[str] = mapped_column(String(1000), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_local: Mapped[str | None] = mapped_column(String(32), nullable=True)  # all-day date or floating wall time, ISO
    end_local: Mapped[str | None] = mapped_column(String(32), nullable=True)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    floating: Mapped[bool] = mapped_column(Boolean, default=False)
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tz_original: Mapped[str | None] = mapped_column(String(255), nullable=True)
    tz_unknown: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="CONFIRMED")  # CONFIRMED | TENTATIVE | CANCELLED
    own_partstat: Mapped[str] = mapped_column(String(16), default="NEEDS-ACTION")
    needs_reconfirm: Mapped[bool] = mapped_column(Boolean, default=False)
    in_calendar: Mapped[bool] = mapped_column(Boolean, default=False)
    # False until the series' occurrences are materialised again after a change: expansion
    # runs off the write path (on the next calendar read, or by the worker).
    expanded: Mapped[bool] = mapped_column(Boolean, default=False)
    online_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    ics: Mapped[str] = mapped_column(Text, default="")
    source_message_id: Mapped[str | None] = mapped_column(String(998), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EventAttendee(Base):
    __tablename__ = "event_attendees"
    __table_args__ = (UniqueConstraint("event_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("calendar_events.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    partstat: Mapped[str] = mapped_column(String(16), default="NEEDS-ACTION")
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), nullable=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True)
    reply_sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_dtstamp: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EventOccurrence(Base):
    """The expanded occurrences of a user's CRM-calendar series, written whenever one of its
    rows changes, so a month view is one indexed range query. `sort_utc` is the UTC instant,
    or, for all-day and floating times, the wall time read as UTC; `start_text`/`end_text`
    keep those as written (a date, or a time without offset)."""

    __tablename__ = "event_occurrences"
    __table_args__ = (Index("ix_event_occurrences_user_sort", "user_id", "sort_utc"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(512), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("calendar_events.id", ondelete="CASCADE"), index=True)
    sort_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_text: Mapped[str | None] = mapped_column(String(32), nullable=True)
    end_text: Mapped[str | None] = mapped_column(String(32), nullable=True)
    summary: Mapped[str] = mapped_column(String(1000), default="")
    location: Mapped[str] = mapped_column(String(1000), default="")
