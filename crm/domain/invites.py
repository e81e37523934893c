"""Meeting invitations (iTIP, RFC 5546) as the services see them: one `InviteDraft` per
VEVENT of an iMIP message, in UTC (or as a date for all-day events, or floating)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from crm.domain.errors import InvalidInput

INVITE_METHODS = ("REQUEST", "CANCEL", "REPLY", "ADD", "COUNTER", "DECLINECOUNTER", "REFRESH")
PARTSTATS = ("ACCEPTED", "TENTATIVE", "DECLINED")
# The years an event may have: far inside what datetime and the databases hold, so that the
# calendar's expansion (three years ahead), its margins and any time zone stay computable.
EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)


class DateOutOfRange(InvalidInput):
    code = "date_out_of_range"


def in_range(value: date | datetime | None) -> bool:
    """True for None and for dates and instants within EARLIEST..LATEST, read as written
    (converting year 1 or 9999 to another zone is what overflows)."""
    if value is None:
        return True
    return EARLIEST <= (value.date() if isinstance(value, datetime) else value) <= LATEST


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    partstat: str = "NEEDS-ACTION"
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class InviteDraft:
    """One VEVENT of an iTIP message.

    recurrence_id: the instance this VEVENT overrides (UTC instant, or a date), None for a
      master; `range_future` when RANGE=THISANDFUTURE.
    start/end: aware UTC datetimes; dates for all-day events (end exclusive); naive datetimes
      for floating times (`floating`).
    time_zone: the IANA zone the organizer used (Windows names mapped); `tz_unknown` when a
      TZID had neither a VTIMEZONE nor a known mapping (the time is then not trusted).
    ics: the VCALENDAR text carrying this VEVENT (its VTIMEZONEs included), for expansion.
    """

    method: str
    uid: str | None
    sequence: int
    dtstamp: datetime | None
    summary: str = ""
    location: str = ""
    description: str = ""
    start: datetime | date | None = None
    end: datetime | date | None = None
    all_day: bool = False
    floating: bool = False
    time_zone: str | None = None
    tz_original: str | None = None
    tz_unknown: bool = False
    recurrence_id: datetime | date | None = None
    range_future: bool = False
    recurring: bool = False
    rrule: str | None = None
    status: str | None = None
    organizer: str | None = None
    organizer_name: str | None = None
    sent_by: str | None = None
    attendees: tuple[Attendee, ...] = ()
    online_url: str | None = None
    ics: str = ""
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Bounded where every invitation is made: a stored event can then never hold a date
        # that breaks a later read of the calendar.
        for name in ("start", "end", "recurrence_id", "dtstamp"):
            if not in_range(getattr(self, name)):
                raise DateOutOfRange(f"the invitation's {name} is outside {EARLIEST.year}–{LATEST.year}")

    def attendee(self, email: str | None) -> Attendee | None:
        if not email:
            return None
        return next((a for a in self.attendees if a.email == email.lower()), None)

    @property
    def instance_key(self) -> str:
        """"" for a master, else the recurrence-id as an ISO instant (UTC) or date."""
        if self.recurrence_id is None:
            return ""
        return self.recurrence_id.isoformat()
