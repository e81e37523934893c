"""Spec part A, the parser's share: invitations read from real mails and calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from crm.domain.drafts import ReadContext
from crm.domain.ports import CalendarObject
from mail_adapter.invites import read_invites
from mail_adapter.reading import read_raw

CORPORA = Path(__file__).resolve().parent / "data" / "corpora"


def from_mail(name: str):  # type: ignore[no-untyped-def]
    return read_invites(read_raw((CORPORA / "thunderbird" / name).read_bytes(), ReadContext()).calendars)


def from_ics(folder: str, name: str, method: str | None = "REQUEST"):  # type: ignore[no-untyped-def]
    return read_invites([CalendarObject((CORPORA / folder / name).read_bytes(), method)])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_A01_one_pending_invitation_with_its_identity() -> None:
    invites, _ = from_mail("single-event.eml")
    assert len(invites) == 1
    inv = invites[0]
    assert inv.method == "REQUEST" and inv.uid and inv.uid.startswith("b0c0b197") and inv.sequence == 0 and inv.dtstamp is not None
    assert inv.organizer == "sender@example.com" and inv.attendee("receiver@example.com") is not None


def test_A02_inline_and_attached_copies_are_one_invitation() -> None:
    invites, _ = from_mail("meet-meeting-invite.eml")
    assert len(invites) == 1 and invites[0].start == utc(2021, 3, 22, 9, 30) and invites[0].end == utc(2021, 3, 22, 10, 30)


def test_A03_ics_without_mime_method_uses_the_body_method() -> None:
    data = (CORPORA / "thunderbird" / "single-event.eml").read_bytes()
    cal = read_raw(data, ReadContext()).calendars[0]
    invites, _ = read_invites([CalendarObject(cal.data, None, "invite.ics")])
    assert [i.method for i in invites] == ["REQUEST"]


def test_A09_outlook_sequence_when_sequence_is_zero() -> None:
    ics = (CORPORA / "thunderbird" / "single-event.eml").read_bytes()
    cal = read_raw(ics, ReadContext()).calendars[0].data.replace(b"SEQUENCE:0", b"SEQUENCE:0\r\nX-MICROSOFT-CDO-APPT-SEQUENCE:4")
    assert read_invites([CalendarObject(cal)])[0][0].sequence == 4


def test_A20_windows_zones_map_to_iana_with_the_right_instant() -> None:
    outlook = from_mail("outlook-test-invite.eml")[0][0]
    assert outlook.time_zone == "Europe/Kiev" and outlook.start == utc(2021, 11, 27, 7, 0)
    assert from_mail("teams-meeting-invite.eml")[0][0].start == utc(2020, 12, 2, 17, 0)
    pacific = from_ics("icalendar", "timezone_same_start.ics")[0][0]
    assert pacific.time_zone == "America/Los_Angeles" and pacific.start == utc(2017, 2, 24, 20, 0)
    tokyo = from_ics("icalendar", "timezone_same_start_and_offset.ics")[0][0]
    assert tokyo.time_zone == "Asia/Tokyo" and tokyo.start == utc(2017, 2, 24, 3, 0)


def test_A21_an_unknown_tzid_is_flagged_not_taken_as_utc() -> None:
    inv, warnings = from_ics("icalendar", "issue_722_missing_VTIMEZONE_custom.ics")
    assert inv[0].tz_unknown and "unknown_time_zone" in warnings
    assert isinstance(inv[0].start, datetime) and inv[0].start.tzinfo is None


def test_A22_all_day_with_exclusive_end() -> None:
    inv = from_ics("icalendar", "property_params.ics")[0][0]
    assert inv.all_day and inv.start == date(2012, 8, 14) and inv.end == date(2012, 8, 15)


def test_A23_floating_times_and_x_wr_timezone() -> None:
    floating = from_ics("recurring-ical-events", "issue_243_recurrence_id_is_not_identical_to_dtstart.ics")[0]
    assert floating and all(i.floating for i in floating)
    google = from_ics("recurring-ical-events", "issue_86_x_wr_timezone_without_time_zone_in_dt.ics")[0]
    assert google[0].start == utc(2021, 9, 16, 19, 0) and not google[0].floating  # 21:00 Brussels (CEST)


def test_A25_no_uid_is_warned() -> None:
    inv, warnings = from_ics("icalendar", "issue_165_missing_event.ics")
    assert inv[0].uid is None and "no_uid" in warnings and inv[0].start == utc(2015, 7, 3, 8, 0)


def test_A26_malformed_input_never_crashes() -> None:
    for name in ("timezone_same_start_and_offset.ics", "bom_calendar.ics", "issue_237_fail_to_parse_timezone_with_non_ascii_tzid.ics", "issue_165_missing_event.ics"):
        from_ics("icalendar", name)
    assert from_mail("teams-meeting-invite.eml")[0]  # blank line inside the VEVENT
    invites, warnings = read_invites([CalendarObject(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n")])
    assert isinstance(warnings, list)


def test_A29_publish_todo_freebusy_are_not_invitations() -> None:
    assert from_ics("icalendar", "x_location.ics", None)[0] == []
    assert from_ics("icalendar", "issue_27_multiple_periods_in_freebusy_one_freebusy.ics", None)[0] == []
    todo = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VTODO\r\nUID:t1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    assert read_invites([CalendarObject(todo)])[0] == []


def test_A30_online_meeting_urls() -> None:
    assert (from_mail("teams-meeting-invite.eml")[0][0].online_url or "").startswith("https://teams.microsoft.com/l/meetup-join/")
    assert (from_mail("meet-meeting-invite.eml")[0][0].online_url or "").startswith("https://meet.google.com/")


def test_hostile_calendars_give_bounded_results() -> None:
    import time

    many = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n" + "".join(
        f"BEGIN:VEVENT\r\nUID:u{i}\r\nDTSTAMP:20220301T000000Z\r\nDTSTART:20220316T110000Z\r\nEND:VEVENT\r\n" for i in range(10_000)
    ) + "END:VCALENDAR\r\n"
    start = time.perf_counter()
    invites, warnings = read_invites([CalendarObject(many.encode())])
    assert len(invites) == 500 and "too_many_events" in warnings and time.perf_counter() - start < 10
    no_start = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20220301T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert read_invites([CalendarObject(no_start)])[0][0].start is None
    latin = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:y\r\nSUMMARY:Caf\xe9\r\nDTSTART:20220316T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert read_invites([CalendarObject(latin.encode("latin-1"))])[0][0].summary.startswith("Caf")


def test_the_description_is_the_organisers_own_text_without_the_thread_below() -> None:
    """Outlook appends the earlier version of a moved meeting under the new text; the
    invitation reader cuts it off with the same zone component as mail."""
    ics = (
        b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:moved-1\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART:20260110T100000Z\r\nDTEND:20260110T110000Z\r\nSUMMARY:Review\r\n"
        b"DESCRIPTION:Moved to Thursday\\, sorry.\\n\\n-----Original Appointment-----\\nFrom: Carla Diaz\\n"
        b"Sent: Monday\\, January 5\\, 2026 9:00 AM\\nTo: Ken\\nSubject: Review\\nWhen: Tuesday\\nWhere: Room 4\\n\\nAgenda: pricing\r\n"
        b"ORGANIZER:mailto:carla@fabrikam.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (invite,), _ = read_invites([CalendarObject(ics, "REQUEST")])
    assert invite.description == "Moved to Thursday, sorry."
    start = ics.index(b"DESCRIPTION:")
    plain = ics[:start] + b"DESCRIPTION:Agenda:\\n- pricing\\n- terms\r\n" + ics[ics.index(b"ORGANIZER:") :]
    (whole,), _ = read_invites([CalendarObject(plain, "REQUEST")])
    assert whole.description == "Agenda:\n- pricing\n- terms"
