"""The daily sending limit's calendar: a day is 00:00–23:59 in the organisation's IANA time
zone, so it lasts 23 or 25 hours on the days the clocks change (zoneinfo does the arithmetic).

Form auto-replies share the limit but may use only `FORM_REPLY_SHARE` of it: a spammed web
form stops first and never exhausts the day's quota for rule, bulk and scheduled mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAILY_LIMIT = 500
MAX_DAILY_LIMIT = 2250  # the source's paid add-on
FORM_REPLY_SHARE = 0.2  # auto-replies: at most 20 % of the day's limit (100 of 500)


def form_reply_limit(daily_limit: int) -> int:
    return int(daily_limit * FORM_REPLY_SHARE)


@dataclass(frozen=True, slots=True)
class QuotaDay:
    """One local day: its date (the quota row's key), when it began and when it resets (UTC)."""

    day: date
    starts_at: datetime
    resets_at: datetime

    @property
    def key(self) -> str:
        return self.day.isoformat()

    @property
    def hours(self) -> float:
        return (self.resets_at - self.starts_at).total_seconds() / 3600


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # Where a zone skips midnight (a DST change at 00:00) the wall time does not exist; fold=0
    # takes the offset before the change, which is the instant the day actually starts.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def quota_day(now: datetime, time_zone: str) -> QuotaDay:
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone).date()
    return QuotaDay(local, _midnight(local, zone), _midnight(local + timedelta(days=1), zone))
