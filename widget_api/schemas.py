"""Request and response bodies of the core endpoints (Pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from email_validator import EmailNotValidError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm.domain.errors import InvalidInput
from crm.domain.rules import checked_email

Short = Field(default=None, max_length=100)
Medium = Field(default=None, max_length=255)


def _no_controls(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValueError("must be a single line without control characters")
    return value.strip() or None


class LeadFields(BaseModel):
    """The editable lead fields; every one optional, single-line except description."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Short
    last_name: str | None = Short
    email: str | None = Field(default=None, max_length=320)
    company: str | None = Medium
    title: str | None = Field(default=None, max_length=128)
    phone: str | None = Field(default=None, max_length=40)
    mobile: str | None = Field(default=None, max_length=40)
    website: str | None = Medium
    street: str | None = Medium
    city: str | None = Short
    state: str | None = Short
    zip_code: str | None = Field(default=None, max_length=20)
    country: str | None = Short
    description: str | None = Field(default=None, max_length=32000)

    @field_validator("first_name", "last_name", "company", "title", "phone", "mobile", "website", "street", "city", "state", "zip_code", "country")
    @classmethod
    def single_line(cls, value: str | None) -> str | None:
        return _no_controls(value)

    @field_validator("email")
    @classmethod
    def valid_email(cls, value: str | None) -> str | None:
        value = _no_controls(value)
        if value is None:
            return None
        try:
            return checked_email(value)
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from None


class MessageRefIn(BaseModel):
    # "ignore": the widget may send back the draft's `message` object as it received it.
    model_config = ConfigDict(extra="ignore")

    folder: str = Field(default="INBOX", max_length=1000)
    uid: int | None = Field(default=None, ge=1, le=2**32 - 1)
    uidvalidity: int | None = Field(default=None, ge=1, le=2**32 - 1)
    message_id: str | None = Field(default=None, max_length=998)
    mailbox_id: int | None = None
    special_use: str | None = Field(default=None, max_length=32, description="the folder's special use as the mail client knows it (junk, inbox, …)")

    @field_validator("folder", "message_id")
    @classmethod
    def single_line(cls, value: str | None) -> str | None:
        return _no_controls(value)

    def key(self) -> str:
        """The "one capture per message" key: the Message-ID (stable across folders)."""
        if self.message_id:
            return "mid:" + self.message_id.strip().strip("<>").strip()
        if self.uid is None:
            raise InvalidInput("a message needs a message_id or a uid")
        return f"imap:{self.mailbox_id or 0}:{self.folder}:{self.uidvalidity or 0}:{self.uid}"


class LeadCreate(LeadFields):
    """Save from the widget: the edited fields, the message they came from, and what to do
    if the sender is already a lead."""

    message: MessageRefIn | None = None
    update_existing_id: int | None = Field(default=None, description="fill this lead's empty fields instead of creating one")
    custom: dict[str, object] | None = Field(default=None, description="custom field values by key")


class LeadUpdate(LeadFields):
    pass


class LeadRead(LeadFields):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    status: str
    source: str
    owner_id: int | None
    created_at: datetime
    updated_at: datetime

    @field_validator("email")
    @classmethod
    def valid_email(cls, value: str | None) -> str | None:  # stored values are shown as stored
        return value


class LeadSaved(BaseModel):
    outcome: Literal["created", "already_captured", "updated"]
    lead: LeadRead
    filled: list[str] = []


class LeadPage(BaseModel):
    items: list[LeadRead]
    total: int
    limit: int
    offset: int


class MailboxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=4096, description="password, or OAuth2 access token with auth=xoauth2")
    auth: Literal["password", "xoauth2"] = "password"
    trusted_authserv_ids: list[str] = Field(default_factory=list, max_length=20)

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"MailboxIn(host={self.host!r}, port={self.port}, username={self.username!r})"


class MailboxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    host: str
    port: int
    security: str
    username: str
    auth: str
    trusted_authserv_ids: list[str]
    folders: list[str] | None = None


class DraftFieldOut(BaseModel):
    value: str
    source: str
    confidence: float
    line: str | None
    confident: bool


class WarningOut(BaseModel):
    code: str
    message: str


class MessageOut(BaseModel):
    folder: str
    uid: int | None
    uidvalidity: int | None
    message_id: str | None
    subject: str
    sender: str | None


class DraftPersonOut(BaseModel):
    """Whom every field of a draft belongs to, and why (`evidence`: stable codes with their
    text in the user's language, strongest reason last)."""

    role: Literal["sender", "forwarded", "quoted", "form"]
    name: str | None
    email: str | None
    evidence: list[WarningOut]
    line: str | None


class DraftAlternativeOut(BaseModel):
    """Another person of the message, as a whole draft the widget can switch to: the sender
    under a forwarded person's draft, a forwarded or quoted person under the sender's."""

    person: DraftPersonOut
    lead: dict[str, DraftFieldOut | None]
    values: dict[str, str | None]
    warnings: list[WarningOut]
    existing: list[dict[str, object]]


class DraftOut(BaseModel):
    message: MessageOut
    lead: dict[str, DraftFieldOut | None]
    values: dict[str, str | None]
    warnings: list[WarningOut]
    existing: list[dict[str, object]]
    captured: LeadRead | None
    bytes_fetched: int
    person: DraftPersonOut | None = None
    alternatives: list[DraftAlternativeOut] = []


class UniqueFieldIn(BaseModel):
    unique: bool
