"""The outbox of automatic mail: the organisation's SMTP submission settings (admins), the
daily sending limit (everyone, the widget too), and what was sent to a lead or by a rule.

The daily limit counts every automatic mail: workflow rules, form auto-replies (at most 20 %
of the limit, so a spammed form never exhausts it), bulk and scheduled sends. **Mail a rep
sends by hand from the widget is not counted**: it leaves through the rep's own mail client
and server, as in the source CRM. Nor is a rep's reply to an invitation they answered in the
widget: it is their own answer, queued in this outbox only so that it is retried
(`GET /api/v1/calendar/replies`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path, Request
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.errors import InvalidInput, NotFound
from crm.domain.mail_quota import DEFAULT_DAILY_LIMIT, MAX_DAILY_LIMIT
from crm.services import bulk_mail, outbox
from crm.store.base import utcnow
from crm.store.outbox import KINDS, UNCOUNTED_KINDS, OutboxMail, SmtpSettings
from mail_adapter.mailbox import is_loopback
from widget_api.connection_tests import check_target
from widget_api.deps import AdminUser, CurrentUser, RuntimeDep, SessionDep
from widget_api.errors import language_of, responses
from widget_api.i18n import translate
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

# A rep's invitation replies are theirs: listed by GET /api/v1/calendar/replies, not here.
SOURCE_KINDS = tuple(k for k in KINDS if k not in UNCOUNTED_KINDS)
router = PrefixRouter(prefix="/api/v1/outbox", tags=["outbox"], responses=responses(400, 403, 404))


class SmtpSettingsIn(BaseModel):
    """`password`: write-only. Omitted (or null), the stored one is kept; "" removes it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int = Field(ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    from_address: str = Field(min_length=3, max_length=320)
    from_name: str | None = Field(default=None, max_length=200)
    daily_limit: int = Field(default=DEFAULT_DAILY_LIMIT, ge=1, le=MAX_DAILY_LIMIT, description=f"mails a day; {DEFAULT_DAILY_LIMIT} by default, at most {MAX_DAILY_LIMIT} (the add-on)")
    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone of the quota's day; default: the organisation's")
    public_url: str = Field(min_length=8, max_length=500, description="this backend's public https base URL (the unsubscribe link of every mail)")


class SmtpSettingsRead(BaseModel):
    host: str
    port: int
    security: str
    username: str | None
    has_password: bool
    from_address: str
    from_name: str | None
    daily_limit: int
    time_zone: str
    public_url: str


class QuotaRead(BaseModel):
    used: int
    left: int
    limit: int
    resets_at: datetime = Field(description="the next midnight in the quota's time zone (UTC)")
    day: str
    time_zone: str
    form_replies_used: int
    form_replies_limit: int
    counts_manual_mail: bool = Field(default=False, description="always false: mail sent by hand from the widget is not counted")


class OutboxEntryRead(BaseModel):
    id: int
    kind: str
    source_id: int | None
    lead_id: int | None
    to_address: str
    subject: str
    status: str
    status_label: str = Field(description="the status in the user's language, e.g. waiting for tomorrow's quota")
    reason: str | None
    reason_label: str | None = Field(default=None, description="why it was skipped or waits, in the user's language (known reasons; an SMTP reply stays as the server said it)")
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime
    message_id: str | None


def _settings_read(row: SmtpSettings) -> SmtpSettingsRead:
    return SmtpSettingsRead(
        host=row.host, port=row.port, security=row.security, username=row.username, has_password=row.secret_encrypted is not None,
        from_address=row.from_address, from_name=row.from_name, daily_limit=row.daily_limit, time_zone=row.time_zone, public_url=row.public_url,
    )


def _reason_label(reason: str | None, language: str) -> str | None:
    if reason is None or not reason.replace("_", "").isalpha():
        return None
    label = translate(f"outbox_reason_{reason}", language, default="")
    return None if label == f"outbox_reason_{reason}" or not label else label


def entry(request: Request, row: OutboxMail) -> OutboxEntryRead:
    label = translate(f"outbox_{row.status}", language_of(request), default=row.status)
    return OutboxEntryRead(
        id=row.id, kind=row.kind, source_id=row.source_id, lead_id=row.lead_id, to_address=row.to_address, subject=row.subject, status=row.status,
        status_label=label, reason=row.reason, reason_label=_reason_label(row.reason, language_of(request)), attempts=row.attempts, next_attempt_at=row.next_attempt_at, sent_at=row.sent_at, created_at=row.created_at,
        message_id=row.message_id,
    )


@router.get("/smtp-settings")
def get_smtp_settings(session: SessionDep, principal: AdminUser) -> SmtpSettingsRead:
    row = outbox.get_smtp_settings(session, principal.organisation_id)
    if row is None:
        raise NotFound("no SMTP submission server is set up", code="smtp_not_configured")
    return _settings_read(row)


@router.put("/smtp-settings")
def put_smtp_settings(body: SmtpSettingsIn, session: SessionDep, principal: AdminUser, runtime: RuntimeDep) -> SmtpSettingsRead:
    """The password is stored encrypted and never returned (`has_password` says whether one is set)."""
    if body.security == "none" and not is_loopback(body.host):
        # The login and every lead's mail in clear text over a network: never.
        raise InvalidInput("SMTP without TLS is allowed only to this computer; use STARTTLS or TLS", code="smtp_plain_not_loopback")
    if not runtime.settings.allow_private_hosts:
        check_target(body.host, body.port)  # the sender must not become a probe of our own network (checked again at every send)
    row = outbox.save_smtp_settings(
        session, principal.organisation_id, runtime.secrets,
        host=body.host, port=body.port, security=body.security, username=body.username, password=body.password,
        from_address=body.from_address, from_name=body.from_name, daily_limit=body.daily_limit, time_zone=body.time_zone, public_url=body.public_url,
    )
    return _settings_read(row)


@router.get("/quota")
def quota(session: SessionDep, principal: CurrentUser) -> QuotaRead:
    """Today's automatic mail: used, left, the limit and when it resets (the next local
    midnight). Mail sent by hand from the widget is not counted, nor the replies to invitations a rep answered in it."""
    status = outbox.quota_status(session, principal.organisation_id, utcnow())
    return QuotaRead(
        used=status.used, left=status.left, limit=status.limit, resets_at=status.resets_at, day=status.day, time_zone=status.time_zone,
        form_replies_used=status.form_replies_used, form_replies_limit=status.form_replies_limit,
    )


@router.get("/leads/{lead_id}")
def for_lead(lead_id: Id, request: Request, session: SessionDep, principal: CurrentUser) -> list[OutboxEntryRead]:
    """The automatic mails of one lead, newest first, with their status."""
    return [entry(request, row) for row in outbox.list_for_lead(session, principal.organisation_id, lead_id)]


@router.get("/sources/{kind}/{source_id}")
def for_source(
    kind: Annotated[str, Path(pattern="^(" + "|".join(SOURCE_KINDS) + ")$")], source_id: Id, request: Request, session: SessionDep, principal: CurrentUser
) -> list[OutboxEntryRead]:
    """The mails of one rule, form or campaign (`kind`: rule, form_reply, bulk, scheduled)."""
    return [entry(request, row) for row in outbox.list_for_source(session, principal.organisation_id, kind, source_id)]


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: Id
    lead_ids: list[Id] | None = Field(default=None, min_length=1, max_length=bulk_mail.MAX_RECIPIENTS, description="these leads (or view_id)")
    view_id: Id | None = Field(default=None, description="a saved view's leads (or lead_ids)")
    send_at: datetime | None = Field(default=None, description="a scheduled send (with a time zone, at most 90 days ahead); none: now")
    batch_key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the same key again queues nothing new (a retried request)")


class BulkRead(BaseModel):
    batch_key: str
    kind: Literal["bulk", "scheduled"]
    template_id: int
    recipients: int = Field(description="mails planned: one per normalised address")
    send_at: datetime | None
    counts: dict[str, int] = Field(description="outbox statuses (queued, skipped, duplicate) and the leads skipped by reason (no_address, duplicate_address)")


@router.post("/bulk", status_code=201, responses=responses(400, 403, 404))
def bulk(body: BulkIn, session: SessionDep, principal: AdminUser) -> BulkRead:
    """A bulk (or scheduled) send of one template: one mail per normalised address, counted in
    the daily limit like every automatic mail (what today's limit leaves waits for tomorrow).
    The statuses: GET /api/v1/outbox/sources/{kind}/{template_id} and per lead."""
    report = bulk_mail.send(
        session, principal, template_id=body.template_id, lead_ids=body.lead_ids, view_id=body.view_id, send_at=body.send_at, batch_key=body.batch_key, now=utcnow()
    )
    return BulkRead(batch_key=report.batch_key, kind=report.kind, template_id=report.template_id, recipients=report.recipients, send_at=report.send_at, counts=report.counts)  # type: ignore[arg-type]
