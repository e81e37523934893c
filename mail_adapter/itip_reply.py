"""The iTIP REPLY (RFC 5546 §3.2.3) to an invitation, and its iMIP message (RFC 6047),
sent through the user's SMTP submission server when one is configured: by
mail_adapter.smtp, the one way this backend sends mail (the same TLS options and the same
check of the server's address at every connect)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import icalendar

from crm.domain.errors import MailboxUnavailable, MailSendRejected, MailSendTemporary
from crm.domain.invites import InviteDraft
from crm.domain.ports import SmtpConfig
from mail_adapter.smtp import SmtpSubmission

# The calendar settings' names for the security of the connection → mail_adapter.smtp's.
SECURITIES = {"ssl": "tls", "starttls": "starttls", "plain": "none"}


def build_reply(invite: InviteDraft, attendee: str, partstat: str, name: str | None = None) -> bytes:
    """METHOD:REPLY with the same UID, SEQUENCE and RECURRENCE-ID, a fresh DTSTAMP, the
    ORGANIZER and only the replying ATTENDEE with its PARTSTAT (no alarms, no other attendees)."""
    original = next(iter(icalendar.Calendar.from_ical(invite.ics).walk("VEVENT")), None)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//mailwidget//iTIP reply//EN")
    cal.add("version", "2.0")
    cal.add("method", "REPLY")
    event = icalendar.Event()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstamp", datetime.now(UTC))
    if original is not None:
        for key in ("RECURRENCE-ID", "DTSTART", "DTEND", "SUMMARY"):
            if key in original:
                event[key] = original[key]
    organizer = icalendar.vCalAddress(f"mailto:{invite.organizer}")
    if invite.organizer_name:
        organizer.params["CN"] = invite.organizer_name
    event.add("organizer", organizer)
    me = icalendar.vCalAddress(f"mailto:{attendee}")
    me.params["PARTSTAT"] = partstat
    if name:
        me.params["CN"] = name
    event.add("attendee", me)
    cal.add_component(event)
    return bytes(cal.to_ical())


def reply_message(invite: InviteDraft, attendee: str, partstat: str, ics: bytes) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = attendee
    msg["To"] = invite.organizer or ""
    verb = {"ACCEPTED": "Accepted", "TENTATIVE": "Tentative", "DECLINED": "Declined"}.get(partstat, partstat.title())
    msg["Subject"] = f"{verb}: {invite.summary}"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=attendee.rsplit("@", 1)[-1])
    msg.set_content(f"{attendee} has {verb.lower()} this invitation.")
    msg.add_alternative(ics.decode("utf-8"), subtype="calendar", params={"method": "REPLY"})
    msg.add_attachment(ics, maintype="application", subtype="ics", filename="reply.ics")
    return msg


def smtp_config(host: str, port: int, security: str, username: str | None, password: str | None, timeout: float = 20.0) -> SmtpConfig:
    """`security` as the calendar settings say it: ssl | starttls | plain (loopback only,
    checked when saved)."""
    return SmtpConfig(host, port, SECURITIES[security], username or None, password, timeout)


def send(config: SmtpConfig, msg: EmailMessage, *, allow_private: bool = False) -> None:
    """Submit the reply from its From to its To. MailboxUnavailable when the server did not
    take it (the answer is recorded all the same; only the mail to the organizer failed)."""
    try:
        SmtpSubmission(config, allow_private=allow_private).send(str(msg["From"]), str(msg["To"]), msg.as_bytes(policy=policy.SMTP))
    except (MailSendTemporary, MailSendRejected) as exc:
        raise MailboxUnavailable(f"the SMTP server {config.host} did not accept the reply ({exc.code})", code="smtp_failed") from None
