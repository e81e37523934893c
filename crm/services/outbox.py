"""The outbox: every automatic mail (workflow rules, form auto-replies, bulk and scheduled
sends) is queued here, built and persisted before any attempt to send it, then sent under the
organisation's daily limit.

Queueing (`enqueue`, `enqueue_many`) validates the address, skips suppressed or invalid ones
with the reason recorded (the row stays visible per lead), refuses a second mail for the same
`dedupe_key` (unique in the database: one lead is never mailed twice by one rule) and, in a
batch, a second mail to the same normalised address.

Sending is the sender's loop (widget_api.outbox_sender), in steps that each commit:
`claim_next` reserves a unit of the day's quota and marks the row "sending" before the SMTP
transaction starts; then `mark_sent`, `mark_retry` (4xx, lost connection: backoff, the unit
given back) or `mark_failed` (5xx). A row still "sending" after `STALE_AFTER` belonged to a
sender that died between DATA and recording the outcome: the server may have accepted it, so
`recover_interrupted` marks it "unconfirmed" and it is never sent again (a lost mail is
visible; a duplicate could not be taken back).

The daily limit (crm.domain.mail_quota) counts every mail of this outbox, auto-replies
included (at most 20 % of the limit for them). Mail a rep sends by hand from the widget goes
through their own mail client and is not counted, as in the source CRM; nor is the reply to
an invitation the rep answered in the widget (`enqueue_reply`): it is their own answer, sent
through their calendar SMTP settings, queued here so that a mail server that is down only
delays it.
"""

from __future__ import annotations

import re
import secrets as token_source
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import ARRAY, Text, any_, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput, NotFound
from crm.domain.mail_quota import DEFAULT_DAILY_LIMIT, MAX_DAILY_LIMIT, form_reply_limit, quota_day
from crm.domain.outgoing_mail import CHARSETS, OutgoingDraft, build_message
from crm.domain.ports import SmtpConfig
from crm.domain.rules import checked_email, normalise_email
from crm.services import timeline
from crm.services.organisations import check_time_zone
from crm.services.secrets import SecretBox
from crm.store.base import utcnow
from crm.store.bulk import insert_rows
from crm.store.calendar import CalendarSetting
from crm.store.db import among, id_chunks, is_postgres
from crm.store.models import Organisation
from crm.store.outbox import DUE_STATUSES, KINDS, UNCOUNTED_KINDS, MailQuotaDay, MailSuppression, OutboxMail, SmtpSettings, release_quota, reserve_quota

SECURITIES = ("starttls", "tls", "none")
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(minutes=1)  # 1, 2, 4 … minutes between tries
BACKOFF_MAX = timedelta(hours=6)
STALE_AFTER = timedelta(minutes=15)  # longer than any SMTP transaction with its timeouts
HARD_BOUNCE_CODES = (550, 551, 553)  # at RCPT TO: the mailbox does not exist


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """status: "queued", "skipped" (reason says why; a row records it) or "duplicate" (nothing
    new was queued; `outbox_id` is the earlier mail of the same dedupe key, if any)."""

    status: str
    reason: str | None = None
    outbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class MailRequest:
    """One mail for `enqueue_many` (the keyword arguments of `enqueue`)."""

    to_address: str
    subject: str
    text: str
    html: str | None = None
    charset: str = "utf-8"
    lead_id: int | None = None
    source_id: int | None = None
    dedupe_key: str | None = None
    not_before: datetime | None = None
    reply_to: str | None = None
    # Not to be sent, for this reason (a lead without an address, one whose address another
    # lead of the batch has): recorded as a "skipped" row all the same, so that the lead's
    # and the rule's statuses say why no mail went (the address is not deduplicated then).
    skip_reason: str | None = None


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    used: int
    left: int
    limit: int
    resets_at: datetime  # the next local midnight, UTC
    day: str  # the local date the counts are for
    time_zone: str
    form_replies_used: int
    form_replies_limit: int


@dataclass(frozen=True)
class Claim:
    """A mail reserved for one sender: send `raw` to `recipient`, then report the outcome."""

    outbox_id: int
    organisation_id: int
    envelope_from: str
    recipient: str
    message_id: str
    raw: bytes
    smtp: SmtpConfig


# ---- settings ---------------------------------------------------------------------------


def get_smtp_settings(session: Session, organisation_id: int) -> SmtpSettings | None:
    return session.get(SmtpSettings, organisation_id)


def save_smtp_settings(
    session: Session,
    organisation_id: int,
    box: SecretBox,
    *,
    host: str,
    port: int,
    security: str,
    from_address: str,
    public_url: str,
    username: str | None = None,
    password: str | None = None,
    from_name: str | None = None,
    daily_limit: int = DEFAULT_DAILY_LIMIT,
    time_zone: str | None = None,
) -> SmtpSettings:
    """Create or replace the settings. `password` None keeps the stored one (the API never
    returns it, so a form that changes the limit sends none)."""
    if security not in SECURITIES:
        raise InvalidInput(f"security must be one of {', '.join(SECURITIES)}")
    if not 1 <= daily_limit <= MAX_DAILY_LIMIT:
        raise InvalidInput(f"the daily limit is between 1 and {MAX_DAILY_LIMIT}", code="daily_limit_range")
    if not (public_url.startswith("https://") or public_url.startswith(("http://localhost", "http://127.0.0.1"))):
        raise InvalidInput("the public URL must be https:// (the unsubscribe link of every mail)")
    try:
        sender = checked_email(from_address)
    except EmailNotValidError:
        raise InvalidInput("the From address is not valid") from None
    if from_name and ("\r" in from_name or "\n" in from_name):
        raise InvalidInput("the sender name must be one line")
    row = session.get(SmtpSettings, organisation_id)
    if row is None:
        org = session.get(Organisation, organisation_id)
        if org is None:
            raise NotFound("no such organisation")
        row = SmtpSettings(organisation_id=organisation_id, time_zone=org.time_zone)
        session.add(row)
    row.host, row.port, row.security = host.strip().lower(), port, security
    row.username = username or None
    if password is not None:
        row.secret_encrypted = box.encrypt(password) if password else None
    row.from_address, row.from_name = sender, from_name or None
    row.daily_limit = daily_limit
    if time_zone:
        row.time_zone = check_time_zone(time_zone)
    row.public_url = public_url.rstrip("/")
    session.flush()
    return row


def smtp_config(row: SmtpSettings, box: SecretBox, timeout: float = 30.0) -> SmtpConfig:
    password = box.decrypt(row.secret_encrypted) if row.secret_encrypted else None
    return SmtpConfig(row.host, row.port, row.security, row.username, password, timeout)


# ---- queueing ---------------------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    organisation_id: int,
    kind: str,
    to_address: str,
    subject: str,
    text: str,
    html: str | None,
    charset: str,
    lead_id: int | None = None,
    source_id: int | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
    reply_to: str | None = None,
    now: datetime | None = None,
) -> EnqueueResult:
    """Queue one automatic mail (see the module's docstring). Flushes, never commits."""
    request = MailRequest(to_address, subject, text, html, charset, lead_id, source_id, dedupe_key, not_before, reply_to)
    return _enqueue(session, organisation_id, kind, request, get_smtp_settings(session, organisation_id), now or utcnow())


def enqueue_many(session: Session, *, organisation_id: int, kind: str, mails: Iterable[MailRequest], now: datetime | None = None) -> list[EnqueueResult]:
    """Queue a send batch: an address (normalised) gets one mail however often it appears,
    so a limit of 500 means 500 different people. Results are in the order given.

    The outcome of `enqueue` for each mail in turn, in a few statements whatever the batch's
    size: one query for the batch's dedupe keys already queued, one for its suppressed
    addresses, one bulk INSERT (a rule over a 10,000-lead import queues 9,000 mails). A
    concurrent batch that took one of the keys meanwhile makes the INSERT fail: then the
    batch is queued one mail at a time, where the loser of each key is told apart."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    requests = list(mails)
    settings = get_smtp_settings(session, organisation_id)
    at = now or utcnow()
    keys = sorted({m.dedupe_key for m in requests if m.dedupe_key is not None})
    earlier_of = _existing_keys(session, organisation_id, keys)
    norms = [normalise_email(m.to_address) for m in requests]
    suppressed = _suppressed(session, organisation_id, {n for n in norms if n})
    earlier_ids: dict[str, int | None] = {}  # address → the earlier row of it, when its mail was a duplicate key
    positions: dict[str, int] = {}  # address → the batch's new row of it
    key_positions: dict[str, int] = {}  # dedupe key → the batch's new row with it
    # Per mail: a result, or (reason of a duplicate | None for the row itself, position of the new row).
    results: list[EnqueueResult | tuple[str | None, int]] = []
    rows: list[dict[str, Any]] = []
    for mail, norm in zip(requests, norms, strict=True):
        if mail.charset not in CHARSETS:
            raise InvalidInput(f"charset must be one of {', '.join(CHARSETS)}")
        if mail.skip_reason is not None:
            norm = None  # recorded as skipped, whatever other mail has the address
        if norm is not None and norm in positions:
            results.append(("duplicate_in_batch", positions[norm]))
            continue
        if norm is not None and norm in earlier_ids:
            results.append(EnqueueResult("duplicate", "duplicate_in_batch", earlier_ids[norm]))
            continue
        key = mail.dedupe_key
        if key is not None and key in earlier_of:
            results.append(EnqueueResult("duplicate", "already_sent_for_key", earlier_of[key]))
            if norm is not None:
                earlier_ids[norm] = earlier_of[key]
            continue
        if key is not None and key in key_positions:  # the same key twice in one batch
            results.append(("already_sent_for_key", key_positions[key]))
            if norm is not None:
                positions[norm] = key_positions[key]
            continue
        if norm is not None:
            positions[norm] = len(rows)
        if key is not None:
            key_positions[key] = len(rows)
        results.append((None, len(rows)))
        rows.append(_row(session, mail, norm, organisation_id, kind, settings, at, suppressed))
    try:
        with session.begin_nested():
            ids = insert_rows(session, OutboxMail.__table__, rows, returning_ids=True)  # type: ignore[arg-type]
    except IntegrityError:
        return _enqueue_each(session, organisation_id, kind, requests, settings, at)
    out: list[EnqueueResult] = []
    for result in results:
        if isinstance(result, EnqueueResult):
            out.append(result)
        elif result[0] is None:
            row = rows[result[1]]
            out.append(EnqueueResult(row["status"], row["reason"], ids[result[1]]))
        else:
            out.append(EnqueueResult("duplicate", result[0], ids[result[1]]))
    return out


def _enqueue_each(session: Session, organisation_id: int, kind: str, mails: list[MailRequest], settings: SmtpSettings | None, now: datetime) -> list[EnqueueResult]:
    """`enqueue_many` one mail at a time (each in a savepoint): when a concurrent batch took
    some of the dedupe keys."""
    seen: dict[str, int | None] = {}
    results: list[EnqueueResult] = []
    for mail in mails:
        norm = normalise_email(mail.to_address) if mail.skip_reason is None else None
        if norm is not None and norm in seen:
            results.append(EnqueueResult("duplicate", "duplicate_in_batch", seen[norm]))
            continue
        result = _enqueue(session, organisation_id, kind, mail, settings, now)
        if norm is not None:
            seen[norm] = result.outbox_id
        results.append(result)
    return results


def _existing_keys(session: Session, organisation_id: int, keys: list[str]) -> dict[str, int]:
    """dedupe key → the id of its row, for those of `keys` already in the outbox."""
    found: dict[str, int] = {}
    for chunk in _chunks(session, keys):
        query = select(OutboxMail.dedupe_key, OutboxMail.id).where(OutboxMail.organisation_id == organisation_id, _among_text(session, OutboxMail.dedupe_key, chunk))
        found.update((key, id_) for key, id_ in session.execute(query) if key is not None)
    return found


def _suppressed(session: Session, organisation_id: int, norms: set[str]) -> dict[str, str]:
    """normalised address → why it is suppressed, for those of `norms` that are."""
    found: dict[str, str] = {}
    for chunk in _chunks(session, sorted(norms)):
        query = select(MailSuppression.address_norm, MailSuppression.reason).where(MailSuppression.organisation_id == organisation_id, _among_text(session, MailSuppression.address_norm, chunk))
        found.update((norm, reason) for norm, reason in session.execute(query))
    return found


def _chunks(session: Session, values: list[str]) -> list[list[str]]:
    size = len(values) if is_postgres(session) else 10_000  # SQLite: a parameter each (limit 32,766)
    return [values[i : i + size] for i in range(0, len(values), max(size, 1))]


def _among_text(session: Session, column: Any, values: list[str]) -> Any:
    """`column IN values`; on PostgreSQL one array parameter (`= ANY(:values)`), as `among`."""
    if is_postgres(session):
        return column == any_(bindparam(None, values, type_=ARRAY(Text)))
    return column.in_(values)


def enqueue_reply(
    session: Session, *, organisation_id: int, user_id: int, from_address: str, to_address: str, subject: str, message_id: str, raw: bytes, now: datetime | None = None
) -> OutboxMail:
    """Queue the iTIP REPLY a rep's answer makes (its bytes built by the caller), in the
    answer's transaction: the answer and its reply are recorded together or not at all.
    InvalidInput when the organizer's address is not one (nothing queued).
    No suppression applies (an organizer who unsubscribed from automatic mail still gets the
    answer to their invitation), no List-Unsubscribe, no quota. Flushes, never commits."""
    now = now or utcnow()
    try:
        recipient = checked_email(to_address)
    except EmailNotValidError:
        raise InvalidInput("the organizer's address is not a mail address", code="invalid_email") from None
    row = OutboxMail(
        organisation_id=organisation_id, kind="itip_reply", source_id=user_id, from_address=from_address, to_address=recipient, address_norm=normalise_email(recipient),
        subject=subject[:500], message_id=message_id, raw=raw, attempts=0, status="queued", next_attempt_at=now, created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def reply_smtp(session: Session, user_id: int, box: SecretBox, timeout: float = 30.0) -> SmtpConfig | None:
    """The submission server of a rep's calendar settings (their names for the security of
    the connection are ssl/starttls/plain), or None when they have none."""
    row = session.scalar(select(CalendarSetting).where(CalendarSetting.user_id == user_id))
    if row is None or not row.smtp_host:
        return None
    password = box.decrypt(row.smtp_secret_encrypted) if row.smtp_secret_encrypted else None
    security = {"ssl": "tls", "starttls": "starttls", "plain": "none"}[row.smtp_security or "starttls"]
    return SmtpConfig(row.smtp_host, row.smtp_port or 587, security, row.smtp_username or None, password, timeout)


def _row(session: Session, mail: MailRequest, norm: str | None, organisation_id: int, kind: str, settings: SmtpSettings | None, now: datetime, suppressed: dict[str, str]) -> dict[str, Any]:
    """The outbox row of one new mail as `_enqueue` makes it (built, or skipped with the
    reason), as a dict for the bulk INSERT."""
    row: dict[str, Any] = {
        "organisation_id": organisation_id, "kind": kind, "source_id": mail.source_id, "lead_id": mail.lead_id, "to_address": mail.to_address[:320],
        "address_norm": norm, "from_address": None, "subject": mail.subject, "message_id": None, "raw": None,
        "unsubscribe_token": None, "dedupe_key": mail.dedupe_key, "reason": None, "attempts": 0, "next_attempt_at": None, "created_at": now,
    }
    reason = mail.skip_reason or _skip_reason(session, organisation_id, mail.to_address, settings, suppressed)
    if reason is not None:
        row["status"], row["reason"] = "skipped", reason
        return row
    assert settings is not None
    row["to_address"] = checked_email(mail.to_address)
    row["from_address"] = settings.from_address
    row["unsubscribe_token"] = token_source.token_urlsafe(24)
    row["raw"], row["message_id"] = _build(mail, row["to_address"], row["unsubscribe_token"], settings, now)
    row["status"], row["next_attempt_at"] = "queued", max(mail.not_before or now, now)
    return row


def _enqueue(session: Session, organisation_id: int, kind: str, mail: MailRequest, settings: SmtpSettings | None, now: datetime) -> EnqueueResult:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    if mail.charset not in CHARSETS:
        raise InvalidInput(f"charset must be one of {', '.join(CHARSETS)}")
    if mail.dedupe_key is not None:
        earlier = session.scalar(select(OutboxMail.id).where(OutboxMail.organisation_id == organisation_id, OutboxMail.dedupe_key == mail.dedupe_key))
        if earlier is not None:
            return EnqueueResult("duplicate", "already_sent_for_key", earlier)
    row = OutboxMail(
        organisation_id=organisation_id, kind=kind, source_id=mail.source_id, lead_id=mail.lead_id, to_address=mail.to_address[:320],
        subject=mail.subject, dedupe_key=mail.dedupe_key, attempts=0, created_at=now,
    )
    reason = mail.skip_reason or _skip_reason(session, organisation_id, mail.to_address, settings, None)
    if reason is not None:
        row.status, row.reason, row.address_norm = "skipped", reason, normalise_email(mail.to_address)
    else:
        assert settings is not None
        row.address_norm = normalise_email(mail.to_address)
        row.to_address = checked_email(mail.to_address)
        row.from_address = settings.from_address
        row.unsubscribe_token = token_source.token_urlsafe(24)
        row.raw, row.message_id = _build(mail, row.to_address, row.unsubscribe_token, settings, now)
        row.status, row.next_attempt_at = "queued", max(mail.not_before or now, now)
    try:
        with session.begin_nested():  # a concurrent enqueue of the same key loses here
            session.add(row)
            session.flush()
    except IntegrityError:
        earlier = session.scalar(select(OutboxMail.id).where(OutboxMail.organisation_id == organisation_id, OutboxMail.dedupe_key == mail.dedupe_key))
        if earlier is None:
            raise
        return EnqueueResult("duplicate", "already_sent_for_key", earlier)
    return EnqueueResult(row.status, row.reason, row.id)


def _skip_reason(session: Session, organisation_id: int, address: str, settings: SmtpSettings | None, suppressed: dict[str, str] | None) -> str | None:
    """Why a mail to `address` is not sent, or None; `suppressed`: the batch's suppressed
    addresses read beforehand (None: looked up here)."""
    try:
        checked_email(address)
    except EmailNotValidError:
        return "invalid_address"
    norm = normalise_email(address)
    if norm is None:
        return "invalid_address"
    if suppressed is not None:
        reason = suppressed.get(norm)
    else:
        reason = session.scalar(select(MailSuppression.reason).where(MailSuppression.organisation_id == organisation_id, MailSuppression.address_norm == norm))
    if reason is not None:
        return reason  # "unsubscribed" | "hard_bounce"
    if settings is None:
        return "smtp_not_configured"
    return None


def _build(mail: MailRequest, to_address: str, token: str, settings: SmtpSettings, now: datetime) -> tuple[bytes, str]:
    if mail.reply_to is not None:
        try:
            checked_email(mail.reply_to)
        except EmailNotValidError:
            raise InvalidInput("the Reply-To address is not valid") from None
    # A merged value with a line break (a lead's name) must not end the header: one line.
    subject = re.sub(r"[\r\n]+", " ", mail.subject)
    fields: dict[str, Any] = {
        "from_address": settings.from_address, "to_address": to_address, "subject": subject, "text": mail.text, "html": mail.html,
        "unsubscribe_url": f"{settings.public_url}/u/{token}",
        "from_name": settings.from_name, "reply_to": mail.reply_to,
    }
    try:
        draft = OutgoingDraft(charset=mail.charset, **fields)
    except UnicodeEncodeError:
        # A merged value (an emoji in a name) that ISO-2022-JP cannot hold: UTF-8 rather than "?".
        draft = OutgoingDraft(charset="utf-8", **fields)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return build_message(draft, now)


# ---- what the widget and the API show ---------------------------------------------------


def quota_status(session: Session, organisation_id: int, now: datetime) -> QuotaStatus:
    settings = get_smtp_settings(session, organisation_id)
    limit, zone = _limit_and_zone(session, organisation_id, settings)
    day = quota_day(now, zone)
    row = session.get(MailQuotaDay, (organisation_id, day.key))
    used, form_used = (row.used, row.form_used) if row else (0, 0)
    return QuotaStatus(used, max(limit - used, 0), limit, day.resets_at, day.key, zone, form_used, form_reply_limit(limit))


def _limit_and_zone(session: Session, organisation_id: int, settings: SmtpSettings | None) -> tuple[int, str]:
    if settings is not None:
        return settings.daily_limit, settings.time_zone
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("no such organisation")
    return DEFAULT_DAILY_LIMIT, org.time_zone


def list_for_lead(session: Session, organisation_id: int, lead_id: int, limit: int = 200) -> list[OutboxMail]:
    return list(
        session.scalars(select(OutboxMail).where(OutboxMail.organisation_id == organisation_id, OutboxMail.lead_id == lead_id).order_by(OutboxMail.id.desc()).limit(limit))
    )


def list_for_source(session: Session, organisation_id: int, kind: str, source_id: int, limit: int = 1000) -> list[OutboxMail]:
    return list(
        session.scalars(
            select(OutboxMail)
            .where(OutboxMail.organisation_id == organisation_id, OutboxMail.kind == kind, OutboxMail.source_id == source_id)
            .order_by(OutboxMail.id.desc())
            .limit(limit)
        )
    )


# ---- suppression ------------------------------------------------------------------------


def suppress(session: Session, organisation_id: int, address: str, reason: str, outbox_id: int | None = None) -> None:
    """Never mail this address automatically again; mails still queued for it are skipped."""
    norm = normalise_email(address)
    if norm is None:
        return
    if session.scalar(select(MailSuppression.id).where(MailSuppression.organisation_id == organisation_id, MailSuppression.address_norm == norm)) is None:
        try:
            with session.begin_nested():
                session.add(MailSuppression(organisation_id=organisation_id, address_norm=norm, reason=reason, outbox_id=outbox_id))
                session.flush()
        except IntegrityError:
            pass  # suppressed meanwhile by a concurrent request: the same outcome
    session.execute(
        update(OutboxMail)
        .where(OutboxMail.organisation_id == organisation_id, OutboxMail.address_norm == norm, OutboxMail.status.in_(DUE_STATUSES))
        .values(status="skipped", reason=reason)
        .execution_options(synchronize_session=False)
    )


def find_by_token(session: Session, token: str) -> OutboxMail:
    row = session.scalar(select(OutboxMail).where(OutboxMail.unsubscribe_token == token)) if 16 <= len(token) <= 64 else None
    if row is None:
        raise NotFound("unknown or expired unsubscribe link", code="unknown_unsubscribe_link")
    return row


def unsubscribe(session: Session, token: str) -> OutboxMail:
    """The one-click unsubscribe (RFC 8058) of the mail that carried `token`. Idempotent."""
    row = find_by_token(session, token)
    suppress(session, row.organisation_id, row.to_address, "unsubscribed", row.id)
    return row


# ---- sending ----------------------------------------------------------------------------


def claim_next(session: Session, box: SecretBox, now: datetime, *, timeout: float = 30.0, scan: int = 50, only: int | None = None) -> Claim | None:
    """The next due mail (or mail `only`, if it is due), marked "sending" with a unit of its
    day's quota reserved; None when nothing is due. Due mails of an organisation whose quota
    is used up become "waiting_quota" until its next local midnight, on the way."""
    for _ in range(scan):
        query = (
            select(OutboxMail)
            .where(OutboxMail.status.in_(DUE_STATUSES), OutboxMail.next_attempt_at <= now)
            .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL: concurrent senders take different rows
        )
        row = session.scalar(query.where(OutboxMail.id == only) if only is not None else query)
        if row is None:
            return None
        if row.kind in UNCOUNTED_KINDS:
            claim = _claim_uncounted(session, row, box, now, timeout)
            if claim is None:
                continue
            return claim
        settings = get_smtp_settings(session, row.organisation_id)
        if settings is None or row.raw is None or row.message_id is None:
            row.status, row.reason = "failed", "smtp_not_configured"
            session.flush()
            continue
        day = quota_day(now, settings.time_zone)
        form = row.kind == "form_reply"
        if not reserve_quota(session, row.organisation_id, day.key, settings.daily_limit, form_reply=form, form_limit=form_reply_limit(settings.daily_limit)):
            # Every due mail of the organisation that this quota stops waits for the next
            # local midnight (only the auto-replies, when it was their share that ran out).
            # SKIP LOCKED: the rows other senders hold are theirs to park, and waiting for them
            # while the failed UPDATE keeps the quota row locked (PostgreSQL does) deadlocks.
            waiting = select(OutboxMail.id).where(
                OutboxMail.organisation_id == row.organisation_id, OutboxMail.status.in_(DUE_STATUSES), OutboxMail.next_attempt_at <= now, OutboxMail.kind.not_in(UNCOUNTED_KINDS)
            )
            if form:
                waiting = waiting.where(OutboxMail.kind == "form_reply")
            ids = list(session.scalars(waiting.with_for_update(skip_locked=True)))
            for chunk in id_chunks(session, ids):
                session.execute(
                    update(OutboxMail)
                    .where(among(session, OutboxMail.id, chunk))
                    .values(status="waiting_quota", reason="waiting_for_quota", next_attempt_at=day.resets_at)
                    .execution_options(synchronize_session=False)
                )
            session.expire(row)
            continue
        row.status, row.reason, row.claimed_at, row.quota_day = "sending", None, now, day.key
        row.attempts += 1
        session.flush()
        return Claim(row.id, row.organisation_id, row.from_address or settings.from_address, row.to_address, row.message_id, row.raw, smtp_config(settings, box, timeout))
    return None


def _claim_uncounted(session: Session, row: OutboxMail, box: SecretBox, now: datetime, timeout: float) -> Claim | None:
    """An invitation reply: sent with its rep's calendar SMTP settings, no quota reserved;
    failed (None) when the rep has removed their SMTP settings since."""
    config = reply_smtp(session, row.source_id, box, timeout) if row.source_id is not None else None
    if config is None or row.raw is None or row.message_id is None:
        row.status, row.reason = "failed", "smtp_not_configured"
        session.flush()
        return None
    row.status, row.reason, row.claimed_at = "sending", None, now
    row.attempts += 1
    session.flush()
    return Claim(row.id, row.organisation_id, row.from_address or "", row.to_address, row.message_id, row.raw, config)


def mark_sent(session: Session, outbox_id: int, now: datetime, reply: str = "") -> None:
    row = _sending(session, outbox_id)
    row.status, row.sent_at, row.reason, row.next_attempt_at = "sent", now, None, None
    session.flush()
    _on_timeline(session, row, now)


def _on_timeline(session: Session, row: OutboxMail, at: datetime) -> None:
    """A sent automatic mail is an entry of its lead's timeline, or of the contact the lead
    became if it was converted meanwhile (the lead's entries moved there). Once per mail: the
    outbox id is the entry's source key."""
    if row.lead_id is None:
        return
    timeline.add_entry(
        session, timeline.person_of_lead(session, row.organisation_id, row.lead_id), "automatic_mail", at=at, summary=row.subject,
        payload={"outbox_id": row.id, "kind": row.kind, "source_id": row.source_id, "to": row.to_address, "message_id": row.message_id},
        source_key=f"outbox:{row.id}",
    )


def mark_retry(session: Session, outbox_id: int, now: datetime, reason: str) -> None:
    """Not accepted this time (4xx, connection lost before the reply to DATA): the unit goes
    back and the mail waits 1, 2, 4 … minutes (at most 6 h); failed after MAX_ATTEMPTS."""
    row = _sending(session, outbox_id)
    _release(session, row)
    if row.attempts >= MAX_ATTEMPTS:
        row.status, row.reason = "failed", f"too_many_attempts: {reason}"[:300]
    else:
        row.status, row.reason = "queued", reason[:300]
        row.next_attempt_at = now + min(BACKOFF_BASE * 2 ** (row.attempts - 1), BACKOFF_MAX)
    session.flush()


def mark_failed(session: Session, outbox_id: int, reason: str, *, hard_bounce: bool = False) -> None:
    """Refused for good (5xx). A refused recipient (550/551/553 at RCPT) is a hard bounce:
    the address is suppressed."""
    row = _sending(session, outbox_id)
    if hard_bounce:  # before the quota row is locked: suppress() may wait for other senders' rows
        suppress(session, row.organisation_id, row.to_address, "hard_bounce", row.id)
    _release(session, row)
    row.status, row.reason = "failed", reason[:300]
    session.flush()


def recover_interrupted(session: Session, now: datetime, stale_after: timedelta = STALE_AFTER) -> int:
    """Rows left "sending" by a sender that died mid-transaction become "unconfirmed" (never
    resent: the server may have answered 250). Returns how many."""
    result = session.execute(
        update(OutboxMail)
        .where(OutboxMail.status == "sending", OutboxMail.claimed_at < now - stale_after)
        .values(status="unconfirmed", reason="interrupted_while_sending")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _sending(session: Session, outbox_id: int) -> OutboxMail:
    row = session.get(OutboxMail, outbox_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no outbox mail {outbox_id}")
    return row


def _release(session: Session, row: OutboxMail) -> None:
    if row.quota_day is not None:
        release_quota(session, row.organisation_id, row.quota_day, form_reply=row.kind == "form_reply")
        row.quota_day = None
