"""Log the opened mail onto records, a record's timeline and its logged mails, auto-log per
record, the never-log lists and the organisation's mail-log settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.drafts import MessageRef
from crm.services import mail_log, timeline
from widget_api.deps import CurrentUser, ReadSessionDep, RuntimeDep, SessionDep
from widget_api.errors import responses
from widget_api.mail_log_scan import log_message, scan_mailbox
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, MessageRefIn

router = PrefixRouter(prefix="/api/v1", tags=["timeline"], responses=responses(400, 403, 404, 502))

RecordPath = Literal["leads", "contacts", "accounts"]
PersonPath = Literal["leads", "contacts"]
SINGULAR = {"leads": "lead", "contacts": "contact", "accounts": "account"}


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["lead", "contact", "account"]
    id: Id


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: MessageRefIn
    records: list[RecordIn] = Field(min_length=1, max_length=20)
    force: bool = Field(default=False, description="log it even though an address is on a never-log list (the 409 `never_log` answer)")


class LoggedOut(BaseModel):
    type: str
    id: int
    entry_id: int
    created: bool


class LogOut(BaseModel):
    logged: list[LoggedOut]
    bytes_fetched: int


class EntryOut(BaseModel):
    id: int
    kind: str
    at: datetime
    summary: str
    payload: dict[str, Any]
    mail_id: int | None
    user_id: int | None


class TimelineOut(BaseModel):
    entries: list[EntryOut]
    next: str | None


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    content_type: str
    size: int
    stored: bool


class MailOut(BaseModel):
    entry_id: int
    message_id: str
    thread_key: str
    subject: str
    sender: str | None
    to: list[str]
    cc: list[str]
    sent_at: datetime | None
    in_reply_to: str | None
    references: list[str]
    text: str
    attachments: list[AttachmentOut]


class AutoLogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class AutoLogOut(BaseModel):
    enabled: bool
    address: str | None = None


class NeverLogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=3, max_length=320, description="an address, or @domain")
    org_wide: bool = False


class NeverLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    value: str
    scope: str
    created_at: datetime


class MailLogSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store_attachments: bool = False
    log_internal: bool = False
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, ge=0, le=2**40)


class MailLogSettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    store_attachments: bool
    log_internal: bool
    max_attachment_bytes: int


@router.post("/messages/log", responses=responses(409))
def log(body: LogIn, principal: CurrentUser, runtime: RuntimeDep) -> LogOut:
    """Log the mail onto each record once; logging it again changes nothing (created false).
    409 `never_log` (nothing stored) when an address of the mail is on the caller's or the
    organisation's never-log list, `scope` saying which; `force` logs it anyway."""
    ref = body.message
    records = [(r.type, r.id) for r in body.records]
    links, fetched = log_message(runtime, principal, MessageRef(ref.folder, ref.uid, ref.uidvalidity, ref.message_id, ref.special_use), records, ref.mailbox_id, force=body.force)
    return LogOut(logged=[LoggedOut(type=x.record.type, id=x.record.id, entry_id=x.entry_id, created=x.created) for x in links], bytes_fetched=fetched)


@router.get("/{kind}/{record_id}/timeline")
def get_timeline(
    kind: RecordPath,
    record_id: Id,
    session: ReadSessionDep,
    principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=timeline.MAX_PAGE)] = 20,
    before: Annotated[str | None, Query(max_length=40, pattern=r"^\d{1,19}-\d{1,10}$", description="the `next` cursor of the previous page")] = None,
) -> TimelineOut:
    rows, cursor = timeline.page(session, principal, SINGULAR[kind], record_id, limit=limit, before=before)
    return TimelineOut(entries=[EntryOut(**timeline.entry_out(r)) for r in rows], next=cursor)


@router.get("/{kind}/{record_id}/mails/{entry_id}")
def get_mail(kind: RecordPath, record_id: Id, entry_id: Id, session: SessionDep, principal: CurrentUser) -> MailOut:
    entry = mail_log.mail_entry(session, principal, SINGULAR[kind], record_id, entry_id)
    mail, attachments = mail_log.mail_of(session, entry)
    return MailOut(
        entry_id=entry.id, message_id=mail.message_key, thread_key=mail.thread_key, subject=mail.subject, sender=mail.sender, to=mail.to, cc=mail.cc,
        sent_at=mail.sent_at, in_reply_to=mail.in_reply_to, references=mail.refs, text=mail.text, attachments=[AttachmentOut.model_validate(a) for a in attachments],
    )


@router.get(
    "/{kind}/{record_id}/mails/{entry_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "description": "the attachment's bytes"}},
)
def get_attachment(kind: RecordPath, record_id: Id, entry_id: Id, attachment_id: Id, runtime: RuntimeDep, principal: CurrentUser) -> StreamingResponse:
    """The kept bytes of an attachment, chunk by chunk as stored."""
    session = runtime.sessions()
    try:
        entry = mail_log.mail_entry(session, principal, SINGULAR[kind], record_id, entry_id)
        row, chunks = mail_log.attachment_chunks(session, principal, entry.mail_id or 0, attachment_id)
        name, ctype = row.name, row.content_type
    except BaseException:
        session.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from chunks()
        finally:
            session.close()

    quoted = name.encode("ascii", "replace").decode().replace('"', "")
    return StreamingResponse(body(), media_type=ctype or "application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{quoted}"'})


@router.delete("/{kind}/{record_id}/mails/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def unlink(kind: RecordPath, record_id: Id, entry_id: Id, session: SessionDep, principal: CurrentUser) -> Response:
    mail_log.unlink(session, principal, SINGULAR[kind], record_id, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{kind}/{record_id}/auto-log")
def get_auto_log(kind: PersonPath, record_id: Id, session: SessionDep, principal: CurrentUser) -> AutoLogOut:
    return AutoLogOut(enabled=mail_log.auto_log_enabled(session, principal, SINGULAR[kind], record_id))


@router.put("/{kind}/{record_id}/auto-log")
def put_auto_log(kind: PersonPath, record_id: Id, body: AutoLogIn, session: SessionDep, principal: CurrentUser) -> AutoLogOut:
    """"Log every mail with this person" for the caller's mailbox, on or off."""
    return AutoLogOut(**mail_log.set_auto_log(session, principal, SINGULAR[kind], record_id, body.enabled))  # type: ignore[arg-type]


@router.post("/mail-log/scan")
def scan(principal: CurrentUser, runtime: RuntimeDep, mailbox_id: Id | None = None) -> dict[str, int]:
    """The auto-log scan of the caller's mailbox now (the worker runs it on a schedule)."""
    return scan_mailbox(runtime, principal, mailbox_id)


@router.get("/never-log")
def never_log(session: SessionDep, principal: CurrentUser) -> list[NeverLogRead]:
    """The caller's own never-log entries and the organisation's."""
    return [NeverLogRead.model_validate(e) for e in mail_log.list_never(session, principal)]


@router.post("/never-log", status_code=status.HTTP_201_CREATED)
def add_never_log(body: NeverLogIn, session: SessionDep, principal: CurrentUser) -> NeverLogRead:
    return NeverLogRead.model_validate(mail_log.add_never(session, principal, body.value, org_wide=body.org_wide))


@router.delete("/never-log/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_never_log(entry_id: Id, session: SessionDep, principal: CurrentUser) -> Response:
    mail_log.remove_never(session, principal, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/settings/mail-log")
def get_settings(session: SessionDep, principal: CurrentUser) -> MailLogSettingsOut:
    return MailLogSettingsOut.model_validate(mail_log.settings_of(session, principal.organisation_id))


@router.put("/settings/mail-log")
def put_settings(body: MailLogSettingsIn, session: SessionDep, principal: CurrentUser) -> MailLogSettingsOut:
    """Admin: keep attachments' bytes (up to max_attachment_bytes each), log internal mail."""
    row = mail_log.configure(session, principal, store_attachments=body.store_attachments, log_internal=body.log_internal, max_attachment_bytes=body.max_attachment_bytes)
    return MailLogSettingsOut.model_validate(row)
