"""iMIP (RFC 6047) calendar parts → InviteDraft, leniently: the calendars people receive
have blank lines inside VEVENTs, a BOM, `END:VCALENDARD`, Windows zone names, spaces in
BYDAY, TZIDs without VTIMEZONE. A part that cannot be read gives a warning, never an error."""

from __future__ import annotations

import re
import warnings as warnings_module
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from crm.domain.invites import INVITE_METHODS, Attendee, InviteDraft
from crm.domain.ports import CalendarObject
from mail_adapter.zones import own_text

MAX_EVENTS = 500  # per message: a calendar with 10,000 VEVENTs is read up to this, with a warning
_URL = re.compile(r"https://(?:teams\.microsoft\.com/l/meetup-join/|meet\.google\.com/|[\w.-]*zoom\.us/j/|[\w.-]*webex\.com/)[^\s<>\"\\]+")


def _clean(data: bytes) -> tuple[str, bool]:
    """Text icalendar can read, and whether VEVENTs beyond MAX_EVENTS were dropped."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if ln.strip()]  # blank lines inside components
    out = "\r\n".join(lines)
    end = out.rfind("END:VCALENDAR")
    if end >= 0:
        out = out[: end + len("END:VCALENDAR")]  # drops "D" of END:VCALENDARD and trailing junk
    out = re.sub(r"(BYDAY=[^;\r\n]*)", lambda m: m.group(1).replace(" ", ""), out)
    # Bounded work for a calendar with thousands of VEVENTs: parse only the first ones.
    starts = [m.start() for m in re.finditer(r"^BEGIN:VEVENT", out, re.M)]
    truncated = len(starts) > MAX_EVENTS
    if truncated:
        out = out[: starts[MAX_EVENTS]] + "END:VCALENDAR"
    return out + "\r\n", truncated


def _mail(value: object) -> str | None:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.lower() or None


def _zone_name(tzid: str | None) -> tuple[str | None, bool]:
    """(IANA name, known) for a TZID: IANA as is, Windows names mapped, globally unique
    prefixes (/mozilla.org/…/Europe/Berlin) stripped."""
    if not tzid:
        return None, True
    candidates = [tzid, WINDOWS_TO_OLSON.get(tzid, ""), "/".join(tzid.strip("/").split("/")[-2:])]
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
            return name, True
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return None, False


def _when(component: icalendar.cal.Component, name: str, vtimezones: set[str]) -> tuple[datetime | date | None, str | None, bool, bool]:
    """(value in UTC / date / floating, original TZID, floating, tz unknown)."""
    prop = component.get(name)
    if prop is None:
        return None, None, False, False
    try:
        value = component.decoded(name)
    except Exception:  # noqa: BLE001 - an unreadable date property: treat as missing
        return None, None, False, True
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            zone, known = _zone_name(str(tzid)) if tzid else (None, True)
            if tzid and zone:
                return value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC), str(tzid), False, False
            if tzid and not known and str(tzid) not in vtimezones:
                return value, str(tzid), True, True  # unknown zone: keep wall time, flag it
            return value, None, True, False  # floating
        return value.astimezone(UTC), str(tzid) if tzid else None, False, False
    if isinstance(value, date):
        return value, None, False, False
    return None, None, False, True


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _sequence(event: icalendar.cal.Component) -> int:
    """SEQUENCE, or Outlook's X-MICROSOFT-CDO-APPT-SEQUENCE when SEQUENCE is absent or 0."""
    def num(name: str) -> int:
        try:
            return int(str(event.get(name, "0")).strip() or 0)
        except ValueError:
            return 0

    return num("SEQUENCE") or num("X-MICROSOFT-CDO-APPT-SEQUENCE")


def _online_url(event: icalendar.cal.Component) -> str | None:
    for name in ("X-MICROSOFT-SKYPETEAMSMEETINGURL", "X-GOOGLE-CONFERENCE", "URL"):
        value = str(event.get(name) or "").strip()
        if value.startswith("https://"):
            return value
    for name in ("DESCRIPTION", "LOCATION"):
        m = _URL.search(str(event.get(name) or ""))
        if m:
            return m.group(0).rstrip(".,;)>")
    return None


def _calendar_text(cal: icalendar.Calendar, event: icalendar.cal.Component) -> str:
    out = icalendar.Calendar()
    for key in ("PRODID", "VERSION", "METHOD", "X-WR-TIMEZONE"):
        if key in cal:
            out.add(key, cal[key])
    for tz in cal.walk("VTIMEZONE"):
        out.add_component(tz)
    out.add_component(event)
    return bytes(out.to_ical()).decode("utf-8", "replace")


def _own_description(text: str) -> str:
    """The organiser's own words of a DESCRIPTION: Outlook appends the earlier versions of
    a moved meeting ("-----Original Appointment-----" with From/Sent/To/Subject/When/Where)
    and clients quote the thread an invitation answers; the zones cut them off as they do
    for mail. A description that is only a forwarded block is kept whole."""
    own = own_text(text.replace("\r\n", "\n")).strip()
    return own if own else text.strip()


def _event(cal: icalendar.Calendar, event: icalendar.cal.Component, method: str) -> InviteDraft:
    warnings = []
    vtimezones = {str(tz.get("TZID")) for tz in cal.walk("VTIMEZONE")}
    start, tz_original, floating, unknown_start = _when(event, "DTSTART", vtimezones)
    end, _tz, _f, unknown_end = _when(event, "DTEND", vtimezones)
    x_wr = str(cal.get("X-WR-TIMEZONE") or "") or None
    if floating and x_wr and isinstance(start, datetime) and not (unknown_start or unknown_end):
        zone, _ = _zone_name(x_wr)
        if zone:  # Google's floating times are in the calendar's X-WR-TIMEZONE
            start = start.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
            end = end.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) if isinstance(end, datetime) and end.tzinfo is None else end
            floating, tz_original = False, x_wr
    all_day = isinstance(start, date) and not isinstance(start, datetime)
    if all_day and end is None and isinstance(start, date):
        end = start + timedelta(days=1)
    if end is None and isinstance(start, datetime) and event.get("DURATION") is not None:
        try:
            end = start + event.decoded("DURATION")
        except Exception:  # noqa: BLE001
            end = None
    rid_prop = event.get("RECURRENCE-ID")
    rid, _t, _fl, _u = _when(event, "RECURRENCE-ID", vtimezones) if rid_prop is not None else (None, None, False, False)
    uid = str(event.get("UID") or "").strip() or None
    if uid is None:
        warnings.append("no_uid")
    if unknown_start or unknown_end:
        warnings.append("unknown_time_zone")
    organizer = event.get("ORGANIZER")
    attendees = event.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    zone, _known = _zone_name(tz_original)
    stamp = event.get("DTSTAMP")
    dtstamp = stamp.dt if stamp is not None and isinstance(stamp.dt, datetime) else None
    return InviteDraft(
        method=method,
        uid=uid,
        sequence=_sequence(event),
        dtstamp=dtstamp.astimezone(UTC) if dtstamp and dtstamp.tzinfo else (dtstamp.replace(tzinfo=UTC) if dtstamp else None),
        summary=str(event.get("SUMMARY") or ""),
        location=str(event.get("LOCATION") or ""),
        description=_own_description(str(event.get("DESCRIPTION") or ""))[:20000],
        start=start,
        end=end,
        all_day=all_day,
        floating=floating and not (unknown_start or unknown_end),
        time_zone=zone,
        tz_original=tz_original,
        tz_unknown=unknown_start or unknown_end,
        recurrence_id=rid,
        range_future=bool(rid_prop is not None and str(rid_prop.params.get("RANGE", "")).upper() == "THISANDFUTURE"),
        recurring=any(k in event for k in ("RRULE", "RDATE")),
        rrule=_text(event["RRULE"].to_ical()) if "RRULE" in event else None,
        status=str(event.get("STATUS") or "").upper() or None,
        organizer=_mail(organizer),
        organizer_name=str(organizer.params.get("CN")) if organizer is not None and organizer.params.get("CN") else None,
        sent_by=_mail(organizer.params.get("SENT-BY")) if organizer is not None and organizer.params.get("SENT-BY") else None,
        attendees=tuple(
            Attendee(_mail(a) or "", str(a.params.get("PARTSTAT", "NEEDS-ACTION")).upper(), str(a.params["CN"]) if a.params.get("CN") else None, str(a.params.get("ROLE") or "") or None)
            for a in attendees
            if _mail(a)
        ),
        online_url=_online_url(event),
        ics=_calendar_text(cal, event),
        warnings=tuple(warnings),
    )


def read_invites(calendars: tuple[CalendarObject, ...] | list[CalendarObject]) -> tuple[list[InviteDraft], list[str]]:
    """Every invitation VEVENT of a message, de-duplicated across parts (Google sends the
    same VCALENDAR inline and as invite.ics). PUBLISH, VTODO and VFREEBUSY are not
    invitations. Returns (invites, warnings)."""
    invites: dict[tuple[object, ...], InviteDraft] = {}
    warnings: list[str] = []
    for i, obj in enumerate(calendars):
        try:
            with warnings_module.catch_warnings():
                # icalendar warns when it guesses a vendor-prefixed TZID; we map zones ourselves.
                warnings_module.simplefilter("ignore")
                text, truncated = _clean(obj.data)
                cal = icalendar.Calendar.from_ical(text)
            if truncated:
                warnings.append("too_many_events")
        except Exception as exc:  # noqa: BLE001 - a broken calendar is reported, never raised
            warnings.append(f"unreadable_calendar:{i}:{type(exc).__name__}")
            continue
        method = str(cal.get("METHOD") or obj.method or "").upper()
        if obj.method and method and obj.method.upper() != method:
            warnings.append("method_mismatch")  # RFC 6047 §2.4: the body's METHOD wins
        if method not in INVITE_METHODS:
            continue
        for n, event in enumerate(cal.walk("VEVENT")):
            try:
                with warnings_module.catch_warnings():
                    warnings_module.simplefilter("ignore")
                    invite = _event(cal, event, method)
            except Exception as exc:  # noqa: BLE001
                warnings.append(f"unreadable_event:{i}:{type(exc).__name__}")
                continue
            key = (invite.uid or f"no-uid-{i}-{n}", invite.instance_key, invite.sequence, invite.dtstamp)
            invites.setdefault(key, invite)
            warnings.extend(w for w in invite.warnings if w not in warnings)
    return list(invites.values()), warnings
