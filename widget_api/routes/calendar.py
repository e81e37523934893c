"""Invitations in the opened message, the user's answer, the CRM calendar and its setting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import policy
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.drafts import MessageRef
from crm.domain.errors import InvalidInput, NotFound
from crm.domain.invites import InviteDraft
from crm.domain.ports import OpenedMessage
from crm.domain.principal import Principal
from crm.services import calendar, mailboxes, outbox
from mail_adapter.invites import read_invites
from mail_adapter.itip_reply import build_reply, reply_message
from mail_adapter.junk_diagnosis import diagnose_headers
from mail_adapter.mailbox import is_loopback
from mail_adapter.parsing import parse_addresses
from widget_api.connection_tests import check_target
from widget_api.deps import CurrentUser, ReadSessionDep, RuntimeDep, SessionDep
from widget_api.errors import responses
from widget_api.outbox_sender import send_one
from widget_api.routes.outbox import OutboxEntryRead, entry
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, MessageRefIn

router = PrefixRouter(prefix="/api/v1/calendar", tags=["calendar"], responses=responses(400, 404, 502))

REPLY_TRY_SECONDS = 10.0  # the SMTP timeout of the reply's first try, inside the answer request

class AnswerIn(MessageRefIn):
    partstat: Literal["ACCEPTED", "TENTATIVE", "DECLINED"]
    event_uid: str | None = Field(default=None, max_length=512, description="which invitation, when the message carries several")
    send_reply: bool = True


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Literal["crm", "none"]
    send_replies: bool | None = None
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Literal["ssl", "starttls", "plain"] | None = None
    smtp_username: str | None = Field(default=None, max_length=320)
    smtp_password: str | None = Field(default=None, max_length=4096)


def _when(value: object, zone: ZoneInfo) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat() if value.tzinfo else value.isoformat()
    return value.isoformat() if isinstance(value, date) else None


def card(view: calendar.InviteView, principal: Principal) -> dict[str, object]:
    inv, row, zone = view.invite, view.event, ZoneInfo(principal.time_zone)
    me = inv.attendee(principal.email)
    return {
        "uid": inv.uid, "method": inv.method, "kind": view.kind, "verified": view.verified, "reasons": view.reasons, "applied": view.applied,
        "summary": inv.summary, "location": inv.location, "online_url": inv.online_url,
        "start_utc": inv.start.isoformat() if isinstance(inv.start, datetime) and inv.start.tzinfo else None,
        "end_utc": inv.end.isoformat() if isinstance(inv.end, datetime) and inv.end.tzinfo else None,
        "start": _when(inv.start, zone), "end": _when(inv.end, zone), "time_zone": principal.time_zone,
        "all_day": inv.all_day, "floating": inv.floating, "organizer_time_zone": inv.time_zone, "tz_unknown": inv.tz_unknown,
        "recurrence_id": inv.instance_key or None, "recurring": inv.recurring, "sequence": inv.sequence,
        "organizer": inv.organizer, "organizer_name": inv.organizer_name,
        "attendees": [{"email": a.email, "name": a.name, "partstat": a.partstat} for a in inv.attendees],
        "invited_partstat": me.partstat if me else None,
        "own_partstat": row.own_partstat if row else None, "needs_reconfirm": row.needs_reconfirm if row else False,
        "in_calendar": row.in_calendar if row else False, "event_id": row.id if row else None, "warnings": list(inv.warnings),
    }


def senders_of(opened: OpenedMessage) -> set[str]:
    values = [v for k, v in opened.headers if k in ("from", "sender", "reply-to")]
    return {a.email for a in parse_addresses(values) if a.email}


def _open(runtime: RuntimeDep, principal: Principal, ref: MessageRefIn) -> tuple[OpenedMessage, bool | None]:
    with runtime.read_sessions() as session:
        box = runtime.mailbox(session, principal, ref.mailbox_id)
        ctx = mailboxes.read_context(session, principal)
    opened = box.open_message(MessageRef(ref.folder, ref.uid, ref.uidvalidity, ref.message_id), ctx)
    diagnosis = diagnose_headers(list(opened.headers), ctx)
    authenticated = diagnosis.authenticated if diagnosis.authentication.get("trusted_header") else None
    return opened, authenticated


def views_for(session: SessionDep, principal: Principal, opened: OpenedMessage, authenticated: bool | None) -> tuple[list[calendar.InviteView], list[str]]:
    invites, warnings = read_invites(opened.calendars)
    senders = senders_of(opened)
    views = [calendar.apply(session, principal, calendar.classify(session, principal, inv, senders, authenticated), opened.message_id) for inv in invites]
    return views, warnings


@router.get("/invitation")
def invitation(ref: Annotated[MessageRefIn, Query()], session: SessionDep, principal: CurrentUser, runtime: RuntimeDep) -> dict[str, object]:
    """The invitations of the opened message. Updates and cancellations of tracked events
    from their verified organizer are applied on the way."""
    opened, authenticated = _open(runtime, principal, ref)
    views, warnings = views_for(session, principal, opened, authenticated)
    return {"invitations": [card(v, principal) for v in views], "warnings": warnings, "message_id": opened.message_id}


@router.post("/answer")
def answer(body: AnswerIn, request: Request, session: SessionDep, principal: CurrentUser, runtime: RuntimeDep) -> dict[str, object]:
    """Record the answer to the invitation(s) of the opened message and, when the user's
    calendar settings have an SMTP server, reply to the organizer (`reply`: its outbox entry;
    `reply_sent`: whether the server took it already)."""
    opened, authenticated = _open(runtime, principal, body)
    invites, _warnings = read_invites(opened.calendars)
    requests = [i for i in invites if i.method == "REQUEST" and (body.event_uid is None or i.uid == body.event_uid)]
    if not requests:
        raise NotFound("this message carries no invitation to answer", code="no_invitation")
    rows = [calendar.answer(session, principal, inv, body.partstat, message_id=opened.message_id) for inv in requests]
    master: InviteDraft = next((i for i in requests if i.recurrence_id is None), requests[0])
    ics = build_reply(master, principal.email, body.partstat)
    settings = calendar.settings_of(session, principal)
    events = [{"event_id": r.id, "uid": r.uid, "instance": r.instance, "own_partstat": r.own_partstat, "in_calendar": r.in_calendar} for r in rows]
    reply: OutboxEntryRead | None = None
    if body.send_reply and settings.send_replies and settings.smtp_host and master.organizer:
        # Through the outbox, queued in the answer's transaction: the answer and its reply are
        # stored together, and a mail server that is down delays the reply (the senders'
        # passes retry it with backoff) instead of losing it. Committed here so that it is
        # tried at once while the rep waits, in the outbox's three steps.
        msg = reply_message(master, principal.email, body.partstat, ics)
        try:
            row = outbox.enqueue_reply(
                session, organisation_id=principal.organisation_id, user_id=principal.user_id, from_address=principal.email, to_address=master.organizer,
                subject=str(msg["Subject"]), message_id=str(msg["Message-ID"]), raw=msg.as_bytes(policy=policy.SMTP),
            )
        except InvalidInput:  # the organizer's address is not one: the answer stands, no reply
            reply = None
        else:
            session.commit()
            # One short try while the rep waits; a server slower than REPLY_TRY_SECONDS leaves
            # the reply to the senders' passes (their 30 s timeout), it never holds the panel.
            send_one(runtime.sessions, runtime.secrets, row.id, timeout=REPLY_TRY_SECONDS, allow_private=runtime.settings.allow_private_hosts)
            session.refresh(row)
            reply = entry(request, row)
    return {"events": events, "reply_ics": ics.decode("utf-8"), "reply_sent": reply is not None and reply.status == "sent", "reply": reply}


@router.get("/replies")
def replies(request: Request, session: ReadSessionDep, principal: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[OutboxEntryRead]:
    """The user's own invitation replies, newest first, with their outbox status: a reply
    the mail server did not take yet is "queued" with its next attempt, retried by the
    outbox's senders; a refused one "failed" with the server's reason."""
    return [entry(request, row) for row in outbox.list_for_source(session, principal.organisation_id, "itip_reply", principal.user_id, limit=limit)]


@router.get("/events")
def events(
    session: SessionDep,  # writes: recurring events are expanded and stored on read
    principal: CurrentUser,
    start: Annotated[datetime, Query(description="ISO date-time; naive means UTC")],
    end: Annotated[datetime, Query()],
) -> list[dict[str, object]]:
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if (end - start).days > 400:
        raise InvalidInput("the window may span at most 400 days")
    return calendar.list_occurrences(session, principal, start, end)


@router.post("/scan", responses=responses(409))
def scan(principal: CurrentUser, runtime: RuntimeDep, mailbox_id: Id | None = None) -> dict[str, int]:
    """Apply the invitation updates and cancellations that arrived in the inbox since the last scan."""
    from widget_api.calendar_scan import scan_inbox
    from widget_api.mailbox_scan import api_lease

    with runtime.sessions() as session:
        account_id = mailboxes.get_account(session, principal, mailbox_id).id
    with api_lease(runtime, account_id):  # never beside the worker's scan of this mailbox
        return scan_inbox(runtime, principal, account_id)


@router.get("/settings")
def get_settings(session: SessionDep, principal: CurrentUser) -> dict[str, object]:  # writes: the defaults are stored on first read
    s = calendar.settings_of(session, principal)
    return {"destination": s.destination, "send_replies": s.send_replies, "smtp_host": s.smtp_host, "smtp_port": s.smtp_port, "smtp_security": s.smtp_security, "smtp_username": s.smtp_username}


@router.put("/settings")
def put_settings(body: SettingsIn, session: SessionDep, principal: CurrentUser, runtime: RuntimeDep) -> dict[str, object]:
    s = calendar.set_destination(session, principal, body.destination, body.send_replies)
    if body.smtp_host is not None:
        if body.smtp_security == "plain" and not is_loopback(body.smtp_host):
            raise InvalidInput("plain SMTP (no TLS) is allowed only to a loopback address", code="plain_not_loopback")
        if not runtime.settings.allow_private_hosts:
            check_target(body.smtp_host, body.smtp_port or 587)  # checked again at every send
        s.smtp_host, s.smtp_port, s.smtp_security, s.smtp_username = body.smtp_host, body.smtp_port, body.smtp_security or "starttls", body.smtp_username
        s.smtp_secret_encrypted = runtime.secrets.encrypt(body.smtp_password) if body.smtp_password else None
    session.flush()
    return get_settings(session, principal)
