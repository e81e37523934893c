"""Expansion of dense recurring series (HOURLY, MINUTELY, a SECONDLY rule of a billion
instances) into the CRM calendar's occurrences: CPU time of crm.services.calendar's growing
window beside the library's own lazy walk (recurring_ical_events' `after()`, the way used
before) in the same run, both bounded at MAX_OCCURRENCES.

    .venv/bin/python bench/series.py
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import icalendar  # noqa: E402
import recurring_ical_events  # noqa: E402

from crm.services.calendar import HORIZON, MAX_OCCURRENCES, _expand  # noqa: E402

FIRST = datetime(2022, 3, 1, 9, tzinfo=UTC)
RULES = {
    "HOURLY;COUNT=1500": "FREQ=HOURLY;COUNT=1500",
    "HOURLY;BYHOUR=9,13,17 (3 a day)": "FREQ=HOURLY;BYHOUR=9,13,17;COUNT=1500",
    "MINUTELY;INTERVAL=30": "FREQ=MINUTELY;INTERVAL=30",
    "SECONDLY;COUNT=10^9": "FREQ=SECONDLY;COUNT=1000000000",
}


def calendar_of(rule: str) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:bench\r\nDTSTAMP:20220301T000000Z\r\n"
        f"DTSTART:{FIRST:%Y%m%dT%H%M%SZ}\r\nDTEND:{FIRST + timedelta(minutes=20):%Y%m%dT%H%M%SZ}\r\nRRULE:{rule}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def naive(cal: icalendar.Calendar, start: datetime, end: datetime) -> list[object]:
    out: list[object] = []
    for ev in recurring_ical_events.of(cal).after(start):
        begin = ev.decoded("DTSTART")
        if begin >= end or len(out) >= MAX_OCCURRENCES:
            break
        out.append(begin)
    return out


def cpu(fn, *args) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    t = time.process_time()
    n = len(fn(*args))
    return time.process_time() - t, n


def main() -> None:
    start, end = FIRST - timedelta(days=1), FIRST + HORIZON  # as rebuild_occurrences asks
    print(f"{'rule':36} {'occurrences':>11} {'window s':>9} {'lazy walk s':>12} {'ratio':>7}")
    for name, rule in RULES.items():
        ours, n = cpu(_expand, calendar_of(rule), start, end)
        theirs, m = cpu(naive, calendar_of(rule), start, end)
        assert n == m, (name, n, m)  # the same occurrences, or the comparison means nothing
        print(f"{name:36} {n:>11} {ours:>9.3f} {theirs:>12.3f} {theirs / ours:>6.1f}×")


if __name__ == "__main__":
    main()
