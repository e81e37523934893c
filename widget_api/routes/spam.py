"""Not spam, why in spam, the whitelist, and the rescue scan on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.drafts import MessageRef
from crm.services import mailboxes, spam
from mail_adapter.junk import JunkFolder
from widget_api.deps import CurrentUser, ReadSessionDep, RuntimeDep, SessionDep
from widget_api.errors import language_of, responses
from widget_api.explain import explain
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, MessageRefIn

router = PrefixRouter(prefix="/api/v1/spam", tags=["spam"], responses=responses(400, 403, 404, 409, 502))


class WhitelistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=3, max_length=320, description="an address, or @domain")
    org_wide: bool = False


class WhitelistRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    value: str
    scope: str
    require_auth: bool
    added_by_id: int | None
    source_message_id: str | None
    created_at: datetime


class NotSpamOut(BaseModel):
    folder: str
    uid: int | None
    uidvalidity: int | None
    method: str
    original_remains: bool
    message_id: str | None
    whitelisted: WhitelistRead | None


class DiagnosisOut(BaseModel):
    sender: str | None
    authenticated: bool
    whitelisted: bool
    authentication: dict[str, object]
    spam: dict[str, object]
    explanation: list[str]


class RescueOut(BaseModel):
    moved: list[dict[str, object]]
    kept: list[dict[str, str]]
    folder: str | None
    last_uid: int


@router.post("/not-spam")
def not_spam(ref: MessageRefIn, session: SessionDep, principal: CurrentUser, runtime: RuntimeDep) -> NotSpamOut:
    junk = JunkFolder(runtime.mailbox(session, principal, ref.mailbox_id))
    outcome, entry = spam.mark_not_spam(session, principal, junk, MessageRef(ref.folder if ref.folder != "INBOX" else "", ref.uid, ref.uidvalidity, ref.message_id))
    return NotSpamOut(
        folder=outcome.folder, uid=outcome.uid, uidvalidity=outcome.uidvalidity, method=outcome.method, original_remains=outcome.original_remains,
        message_id=outcome.message_id, whitelisted=WhitelistRead.model_validate(entry) if entry else None,
    )


@router.get("/diagnosis")
def diagnosis(request: Request, ref: Annotated[MessageRefIn, Query()], principal: CurrentUser, runtime: RuntimeDep) -> DiagnosisOut:
    with runtime.read_sessions() as session:
        box = runtime.mailbox(session, principal, ref.mailbox_id)
        ctx = mailboxes.read_context(session, principal)
        listed = spam.whitelisted_values(session, principal)
    d = JunkFolder(box).diagnose(MessageRef(ref.folder if ref.folder != "INBOX" else "", ref.uid, ref.uidvalidity, ref.message_id), ctx)
    domain = d.sender.rsplit("@", 1)[-1] if d.sender else None
    is_listed = bool(d.sender) and (d.sender in listed or f"@{domain}" in listed)
    return DiagnosisOut(sender=d.sender, authenticated=d.authenticated, whitelisted=is_listed, authentication=d.authentication, spam=d.spam, explanation=explain(d, language_of(request), is_listed))


@router.get("/whitelist")
def list_whitelist(session: ReadSessionDep, principal: CurrentUser) -> list[WhitelistRead]:
    return [WhitelistRead.model_validate(e) for e in spam.list_entries(session, principal)]


@router.post("/whitelist", status_code=status.HTTP_201_CREATED)
def add_whitelist(body: WhitelistIn, session: SessionDep, principal: CurrentUser) -> WhitelistRead:
    return WhitelistRead.model_validate(spam.add_entry(session, principal, body.value, org_wide=body.org_wide))


@router.delete("/whitelist/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_whitelist(entry_id: Id, session: SessionDep, principal: CurrentUser) -> None:
    spam.remove_entry(session, principal, entry_id)


@router.post("/rescue")
def rescue(principal: CurrentUser, runtime: RuntimeDep, mailbox_id: Id | None = None) -> RescueOut:
    from widget_api.mailbox_scan import api_lease

    with runtime.sessions() as session:
        account_id = mailboxes.get_account(session, principal, mailbox_id).id
    # Under the mailbox's lease, in sessions of its own: the lease must be committed before
    # the scan (the request's transaction would hold SQLite's write lock until the end).
    with api_lease(runtime, account_id), runtime.sessions.begin() as session:
        junk = JunkFolder(runtime.mailbox(session, principal, account_id))
        outcome = spam.rescue(session, principal, account_id, junk, mailboxes.read_context(session, principal))
    return RescueOut(
        moved=[{"uid": m.uid, "message_id": m.message_id, "sender": m.sender, "method": m.method} for m in outcome.moved],
        kept=[{"sender": s, "reason": r} for s, r in outcome.kept],
        folder=outcome.state.folder,
        last_uid=outcome.state.last_uid,
    )
