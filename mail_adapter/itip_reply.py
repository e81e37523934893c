"""The iTIP REPLY (RFC 5546 §3.2.3) to an invitation, and its iMIP message (RFC 6047). It
is sent like every mail of this backend: queued in the outbox (crm.services.outbox
`enqueue_reply`) and submitted by mail_adapter.smtp through the user's SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import icalendar

from crm.domain.invites import InviteDraft


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
