"""The outbox's sender: one pass sends every due mail (crm.services.outbox), each in three
committed steps so that the database always says where a mail stands:

1. claim: a unit of the day's quota reserved and the row "sending" (committed before the
   SMTP transaction opens, so no mail leaves without its reservation);
2. the SMTP transaction (no database transaction is open meanwhile);
3. the outcome: sent / retry with backoff / failed.

A sender killed between 2 and 3 leaves the row "sending"; the next pass's
`recover_interrupted` makes it "unconfirmed" once it is older than STALE_AFTER, never resent.
Any number of senders (threads or processes) may run passes at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from crm.domain.errors import MailSendRejected, MailSendTemporary
from crm.domain.ports import SmtpConfig, SubmissionPort
from crm.services import outbox
from crm.services.secrets import SecretBox
from crm.store.base import utcnow
from mail_adapter.smtp import SmtpSubmission

log = logging.getLogger(__name__)

Connector = Callable[[SmtpConfig], SubmissionPort]


@dataclass
class PassResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    recovered: int = 0


def send_pass(
    sessions: sessionmaker[Session],
    box: SecretBox,
    *,
    connect: Connector | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_mails: int | None = None,
    timeout: float = 30.0,
    allow_private: bool = False,
) -> PassResult:
    """Send due mails until none is left (or `max_mails` were tried). `allow_private`: the
    servers may be on loopback or private addresses (MAILWIDGET_ALLOW_PRIVATE_HOSTS)."""
    connect = connect or functools.partial(SmtpSubmission, allow_private=allow_private)
    result = PassResult()
    with sessions.begin() as s:
        result.recovered = outbox.recover_interrupted(s, clock())
    tried = 0
    while max_mails is None or tried < max_mails:
        with sessions.begin() as s:
            claim = outbox.claim_next(s, box, clock(), timeout=timeout)
        if claim is None:
            break
        tried += 1
        _attempt(sessions, claim, connect, clock, result)
    return result


def send_one(
    sessions: sessionmaker[Session], box: SecretBox, outbox_id: int, *, connect: Connector | None = None, clock: Callable[[], datetime] = utcnow, timeout: float = 30.0, allow_private: bool = False
) -> PassResult:
    """Try mail `outbox_id` now (committed by the caller), in the same three steps: the
    invitation reply is sent while the rep waits for the answer, and when the server is
    down it stays queued for the senders' passes. Nothing counted when it is not due (a
    sender's pass took it first)."""
    connect = connect or functools.partial(SmtpSubmission, allow_private=allow_private)
    result = PassResult()
    with sessions.begin() as s:
        claim = outbox.claim_next(s, box, clock(), timeout=timeout, scan=1, only=outbox_id)
    if claim is not None:
        _attempt(sessions, claim, connect, clock, result)
    return result


def _attempt(sessions: sessionmaker[Session], claim: outbox.Claim, connect: Connector, clock: Callable[[], datetime], result: PassResult) -> None:
    """Steps 2 and 3 for a claimed mail."""
    outcome = _send(claim, connect)
    with sessions.begin() as s:
        if outcome is None:
            outbox.mark_sent(s, claim.outbox_id, clock())
            result.sent += 1
        elif isinstance(outcome, MailSendTemporary):
            outbox.mark_retry(s, claim.outbox_id, clock(), outcome.detail)
            result.retried += 1
        else:
            hard = outcome.recipient_refused and outcome.smtp_code in outbox.HARD_BOUNCE_CODES
            outbox.mark_failed(s, claim.outbox_id, outcome.detail, hard_bounce=hard)
            result.failed += 1


def _send(claim: outbox.Claim, connect: Connector) -> MailSendTemporary | MailSendRejected | None:
    try:
        connect(claim.smtp).send(claim.envelope_from, claim.recipient, claim.raw)
    except (MailSendTemporary, MailSendRejected) as exc:
        # The reason, never the address or the message (user data stays out of the log).
        log.info("outbox mail %d not sent: %s", claim.outbox_id, exc.code)
        return exc
    return None
