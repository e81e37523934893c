"""The inbox scan that applies invitation updates and cancellations arriving by mail,
for the API (on demand) and the worker (on a schedule)."""

from __future__ import annotations

from crm.domain.drafts import MessageRef
from crm.domain.errors import MessageNotFound
from crm.domain.principal import Principal
from crm.services import calendar, mailboxes
from mail_adapter.invites import read_invites
from mail_adapter.junk_diagnosis import diagnose_headers
from widget_api.routes.calendar import senders_of
from widget_api.runtime import Runtime


def scan_inbox(runtime: Runtime, principal: Principal, mailbox_id: int | None = None, *, expand: bool = True) -> dict[str, int]:
    """Open every new inbox message that carries a calendar part and apply what may be
    applied by itself (verified updates and cancels of tracked events, replies); then expand
    the changed series, unless `expand` is False (the queue's `expand_series` job does it)."""
    with runtime.sessions.begin() as session:
        box = runtime.mailbox(session, principal, mailbox_id)
        ctx = mailboxes.read_context(session, principal)
        setting = calendar.settings_of(session, principal)
        since, validity = setting.calendar_last_uid, setting.calendar_uidvalidity
    validity, last_uid, uids = box.messages_with_calendars("INBOX", since or 0, validity)
    applied = 0
    for uid in uids:
        try:
            opened = box.open_message(MessageRef("INBOX", uid, validity), ctx)
        except MessageNotFound:
            continue  # deleted meanwhile
        diagnosis = diagnose_headers(list(opened.headers), ctx)
        authenticated = diagnosis.authenticated if diagnosis.authentication.get("trusted_header") else None
        with runtime.sessions.begin() as session:
            for invite in read_invites(opened.calendars)[0]:
                view = calendar.classify(session, principal, invite, senders_of(opened), authenticated)
                applied += calendar.apply(session, principal, view, opened.message_id).applied
    with runtime.sessions.begin() as session:
        setting = calendar.settings_of(session, principal)
        setting.calendar_last_uid, setting.calendar_uidvalidity = last_uid, validity
        if expand:
            calendar.refresh_occurrences(session, principal)  # expand changed series off the request path
    return {"messages": len(uids), "applied": applied, "last_uid": last_uid}
