"""Invitations into the CRM calendar: time per invitation once the message is fetched (parse,
classify, answer or apply, on SQLite) over 1,000 mixed messages (new, minor and major
updates, cancels), and the month view of a user with 500 recurring series, beside the naive
month view (re-parsing every stored calendar with icalendar and expanding it whole).

    .venv/bin/python bench/invitations.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import icalendar  # noqa: E402
import recurring_ical_events  # noqa: E402

from crm.domain.ports import CalendarObject  # noqa: E402
from crm.domain.principal import Principal  # noqa: E402
from crm.services import calendar, organisations  # noqa: E402
from crm.store.calendar import CalendarEvent  # noqa: E402
from crm.store.db import make_engine, make_session_factory, migrate  # noqa: E402
from mail_adapter.invites import read_invites  # noqa: E402

ME = "rep@acme.example"


def ics(uid: int, method: str, seq: int, stamp: str, hour: int, rrule: str = "RRULE:FREQ=WEEKLY;COUNT=52\r\n") -> bytes:
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\nUID:bench-{uid}\r\nSEQUENCE:{seq}\r\nDTSTAMP:{stamp}\r\n"
        f"DTSTART;TZID=Asia/Tokyo:20260105T{hour:02d}0000\r\nDTEND;TZID=Asia/Tokyo:20260105T{hour:02d}3000\r\n{rrule}"
        f"ORGANIZER:mailto:org{uid % 50}@customer.example\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{ME}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:org{uid % 50}@customer.example\r\nSUMMARY:Meeting {uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'cal.db'}"
    migrate(url)
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as s:
        org = organisations.create_organisation(s, "Bench")
        user = organisations.create_user(s, org.id, ME)
        principal = Principal(user.id, org.id, ME)

    # 1,000 messages: 500 new series (answered), then minor/major updates and cancels of them.
    messages: list[tuple[bytes, str | None]] = [(ics(i, "REQUEST", 0, "20260101T000000Z", 9 + i % 8), "ACCEPTED") for i in range(500)]
    for i in range(500):
        kind = i % 3
        if kind == 0:
            messages.append((ics(i, "REQUEST", 0, "20260102T000000Z", 9 + i % 8), None))  # minor
        elif kind == 1:
            messages.append((ics(i, "REQUEST", 1, "20260103T000000Z", 10 + i % 8), None))  # major
        else:
            messages.append((ics(i + 1000, "CANCEL", 1, "20260103T000000Z", 9), None))  # unknown cancel
    times = []
    for raw, answer in messages:
        start = time.perf_counter()
        with sessions.begin() as s:
            for invite in read_invites([CalendarObject(raw)])[0]:
                if answer:
                    calendar.answer(s, principal, invite, answer)
                else:
                    calendar.apply(s, principal, calendar.classify(s, principal, invite, {invite.organizer or ""}, None))
        times.append((time.perf_counter() - start) * 1000)

    window = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    start = time.perf_counter()
    with sessions.begin() as s:  # what the worker does after a scan: expand the changed series
        refreshed = calendar.refresh_occurrences(s, principal)
    refresh = (time.perf_counter() - start) * 1000
    views = []
    for _ in range(20):
        start = time.perf_counter()
        with sessions() as s:
            got = calendar.list_occurrences(s, principal, *window)
        views.append((time.perf_counter() - start) * 1000)
    naive = []
    for _ in range(3):
        start = time.perf_counter()
        with sessions() as s:
            count = 0
            for row in s.query(CalendarEvent).filter(CalendarEvent.user_id == principal.user_id):
                count += sum(1 for ev in recurring_ical_events.of(icalendar.Calendar.from_ical(row.ics)).all() if window[0] <= ev.decoded("DTSTART") < window[1])
        naive.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(views)
    print(f"invitations: {len(messages)}; per invitation p50 {statistics.median(times):.2f} ms, p99 {sorted(times)[int(len(times) * 0.99)]:.2f} ms, mean {statistics.mean(times):.2f} ms")
    print(f"materialising the {refreshed} changed series (worker, off the request path): {refresh:.0f} ms ({refresh / max(refreshed, 1):.2f} ms per series)")
    print(f"month view (500 weekly series, {len(got)} occurrences): p50 {p50:.1f} ms, max {max(views):.1f} ms")
    print(f"naive month view (parse + expand every series whole): {statistics.median(naive):.1f} ms ({count} occurrences) -> {statistics.median(naive) / p50:.1f}x")


if __name__ == "__main__":
    main()
