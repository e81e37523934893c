"""Request and response bodies of the core endpoints (Pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import InvalidInput
from crm.domain.leads import MAX_LENGTHS, LeadStatus, value_problem
from crm.store.base import MAX_COUNT, MAX_ID

# Every id and count the API takes, bounded by what the database columns hold: a larger
# number would reach the driver as an OverflowError (SQLite) or a DataError (PostgreSQL)
# instead of being refused as a 422.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Offset = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _no_controls(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValueError("must be a single line without control characters")
    return value.strip() or None


class LeadData(BaseModel):
    """The standard lead fields, as stored."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    mobile: str | None = None
    website: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    country: str | None = None
    description: str | None = None


def _document_limits(schema: dict[str, Any]) -> None:
    for name, limit in MAX_LENGTHS.items():
        prop = schema.get("properties", {}).get(name, {})
        for option in prop.get("anyOf", [prop]):
            if option.get("type") == "string":
                option["maxLength"] = limit


class LeadFields(LeadData):
    """The editable lead fields, every one optional; what each may hold is crm.domain.leads
    (the check every writer passes), applied here too so the API answers 422 per field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_limits)

    @field_validator(*LEAD_FIELDS)
    @classmethod
    def storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        text = value.strip() if value is not None else ""
        problem = value_problem(info.field_name or "", text) if text else None
        if problem:
            raise ValueError(problem)
        return text or None


class MessageRefIn(BaseModel):
    # "ignore": the widget may send back the draft's `message` object as it received it.
    model_config = ConfigDict(extra="ignore")

    folder: str = Field(default="INBOX", max_length=1000)
    uid: int | None = Field(default=None, ge=1, le=2**32 - 1)
    uidvalidity: int | None = Field(default=None, ge=1, le=2**32 - 1)
    message_id: str | None = Field(default=None, max_length=998)
    mailbox_id: Id | None = None
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
    update_existing_id: Id | None = Field(default=None, description="fill this lead's empty fields instead of creating one")
    custom: dict[str, object] | None = Field(default=None, description="custom field values by key")


class LeadUpdate(LeadFields):
    pass


class LeadStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: LeadStatus


class LeadRead(LeadData):
    """A lead as stored: never re-validated, so a value stored under older rules still reads."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    status: str
    source: str
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


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
