"""Core tables: organisations, users and their tokens, mailbox accounts, leads with their
unique keys, and the message → lead capture links.

Every row that belongs to an organisation carries `organisation_id`, and every query in
repositories filters by it: that column is the tenancy boundary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.domain.search import MAX_KEY, person_texts, search_key
from crm.store.base import Base, UTCDateTime, utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    default_region: Mapped[str] = mapped_column(String(2), default="JP")
    # The organisation's own mail domains (forwards from colleagues; never a lead's company).
    mail_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("organisation_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="member")  # "admin" | "member"
    language: Mapped[str] = mapped_column(String(8), default="ja")
    widget_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 (tokens are 256-bit random: no slow hash needed)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    # "full" (the CLI's tokens, for scripts and admins) or "widget" (issued by pairing: the
    # widget's endpoints, never an admin's). Added by the auth branch (auth_0001).
    scope: Mapped[str] = mapped_column(String(16), default="full", server_default="full")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class MailboxAccount(Base):
    """A user's IMAP mailbox. `secret_encrypted` is the password or OAuth token, Fernet-encrypted
    with the admin's key; it is never returned by the API nor logged."""

    __tablename__ = "mailbox_accounts"
    __table_args__ = (UniqueConstraint("user_id", "host", "username"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16))  # "ssl" | "starttls" | "plain"
    username: Mapped[str] = mapped_column(String(320))
    auth: Mapped[str] = mapped_column(String(16), default="password")  # "password" | "xoauth2"
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # authserv-ids whose Authentication-Results this account's server writes (RFC 8601 §5).
    trusted_authserv_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lead(Base):
    """A lead: company and person in one record, as in the source CRM."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_org_email_norm", "organisation_id", "email_norm"),
        Index("ix_leads_org_created", "organisation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_norm: Mapped[str | None] = mapped_column(String(320), nullable=True)
    company: Mapped[str | None] = mapped_column(String(255), nullable=True)
    title: Mapped[str | None] = mapped_column(String(128), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    mobile: Mapped[str | None] = mapped_column(String(40), nullable=True)
    website: Mapped[str | None] = mapped_column(String(255), nullable=True)
    street: Mapped[str | None] = mapped_column(String(255), nullable=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str | None] = mapped_column(String(100), nullable=True)
    zip_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    country: Mapped[str | None] = mapped_column(String(100), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # crm.domain.search's key of name, company, email and phones; kept current by the
    # listeners at the end of this module (and by the CSV import's bulk insert).
    search_key: Mapped[str | None] = mapped_column(String(MAX_KEY), nullable=True)
    # Where the lead came from: "widget", "api", "csv_import", "web_form".
    source: Mapped[str] = mapped_column(String(32), default="api")
    status: Mapped[str] = mapped_column(String(32), default="open")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FieldSetting(Base):
    """Per organisation and lead field: whether duplicate values are refused.

    A missing row means the default: email unique, every other field not.
    """

    __tablename__ = "field_settings"
    __table_args__ = (UniqueConstraint("organisation_id", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(64))
    unique: Mapped[bool] = mapped_column(Boolean, default=False)


class LeadUniqueKey(Base):
    """The database's enforcement of unique fields: one row per (lead, unique field) holding
    the normalised value; the unique constraint refuses a second lead with the same value
    even when two requests race past every check made before the insert."""

    __tablename__ = "lead_unique_keys"
    __table_args__ = (UniqueConstraint("organisation_id", "field", "value_norm"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    value_norm: Mapped[str] = mapped_column(String(400))


class MessageCapture(Base):
    """"One capture per message": the lead a message produced, keyed by its Message-ID."""

    __tablename__ = "message_captures"
    __table_args__ = (UniqueConstraint("organisation_id", "message_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    message_key: Mapped[str] = mapped_column(String(512))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Account(Base):
    """A company (made by converting leads; several contacts hang under one account)."""

    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_org_name_norm", "organisation_id", "name_norm"), Index("ix_accounts_org_company_key", "organisation_id", "company_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    name_norm: Mapped[str] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(255), nullable=True)
    email_domain: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    # The company key (see ConversionSettings) of the lead the account was made from, normalised.
    company_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    search_key: Mapped[str | None] = mapped_column(String(MAX_KEY), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_org_email_norm", "organisation_id", "email_norm"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_norm: Mapped[str | None] = mapped_column(String(320), nullable=True)
    title: Mapped[str | None] = mapped_column(String(128), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    mobile: Mapped[str | None] = mapped_column(String(40), nullable=True)
    search_key: Mapped[str | None] = mapped_column(String(MAX_KEY), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


JsonDict = dict[str, Any]


def lead_search_key(values: Any) -> str:
    """The key of a lead, from the object or a dict of its columns (the bulk insert's rows)."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    return search_key(person_texts(get("first_name"), get("last_name"), get("company"), get("email")), (get("phone"), get("mobile")))


def contact_search_key(contact: Contact) -> str:
    return search_key(person_texts(contact.first_name, contact.last_name, contact.email), (contact.phone, contact.mobile))


def account_search_key(account: Account) -> str:
    return search_key([account.name, account.website, account.email_domain])


# Every ORM insert and update of the three records recomputes the key (a flush of a changed
# name or phone included), so no write path of the services can forget it.
@event.listens_for(Lead, "before_insert")
@event.listens_for(Lead, "before_update")
def _lead_key(_mapper: Any, _connection: Any, lead: Lead) -> None:
    lead.search_key = lead_search_key(lead)


@event.listens_for(Contact, "before_insert")
@event.listens_for(Contact, "before_update")
def _contact_key(_mapper: Any, _connection: Any, contact: Contact) -> None:
    contact.search_key = contact_search_key(contact)


@event.listens_for(Account, "before_insert")
@event.listens_for(Account, "before_update")
def _account_key(_mapper: Any, _connection: Any, account: Account) -> None:
    account.search_key = account_search_key(account)
