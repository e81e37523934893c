"""The daily limit: local days in the organisation's time zone (DST-correct), mails over the
limit waiting for the next local midnight, the auto-replies' share, and exact reservations
under concurrent senders."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from crm.domain.mail_quota import form_reply_limit, quota_day
from crm.services import outbox
from crm.store.outbox import MailQuotaDay, reserve_quota
from tests.servers.smtp import SmtpSink
from tests.test_outbox import configure, mail
from widget_api.deps import Runtime
from widget_api.outbox_sender import send_pass


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestQuotaDay:
    @pytest.mark.parametrize(
        ("zone", "instant", "day", "hours"),
        [
            ("Asia/Tokyo", utc(2026, 12, 2, 14, 59, 59), date(2026, 12, 2), 24),
            ("Asia/Tokyo", utc(2026, 12, 2, 15, 0), date(2026, 12, 3), 24),
            ("America/New_York", utc(2026, 3, 8, 12), date(2026, 3, 8), 23),  # spring forward
            ("America/New_York", utc(2026, 11, 1, 12), date(2026, 11, 1), 25),  # fall back
            ("Pacific/Chatham", utc(2026, 4, 5, 0), date(2026, 4, 5), 25),  # +13:45 → +12:45
            ("Pacific/Chatham", utc(2026, 9, 27, 0), date(2026, 9, 27), 23),  # +12:45 → +13:45
        ],
    )
    def test_local_day_and_its_length(self, zone: str, instant: datetime, day: date, hours: int) -> None:
        qd = quota_day(instant, zone)
        assert qd.day == day and qd.hours == hours and qd.starts_at <= instant < qd.resets_at

    def test_boundaries_in_utc(self) -> None:
        assert quota_day(utc(2026, 3, 8, 12), "America/New_York").starts_at == utc(2026, 3, 8, 5)  # EST midnight
        assert quota_day(utc(2026, 3, 8, 12), "America/New_York").resets_at == utc(2026, 3, 9, 4)  # EDT midnight
        assert quota_day(utc(2026, 11, 1, 12), "America/New_York").resets_at == utc(2026, 11, 2, 5)
        assert quota_day(utc(2026, 4, 5, 0), "Pacific/Chatham").starts_at == utc(2026, 4, 4, 10, 15)  # 00:00 +13:45
        assert quota_day(utc(2026, 9, 27, 0), "Pacific/Chatham").resets_at == utc(2026, 9, 27, 10, 15)  # 00:00 +13:45
        assert quota_day(utc(2026, 9, 27, 0), "Pacific/Chatham").starts_at == utc(2026, 9, 26, 11, 15)  # 00:00 +12:45

    def test_naive_time_refused(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            quota_day(datetime(2026, 1, 1), "Asia/Tokyo")  # noqa: DTZ001


def queue_many(runtime: Runtime, org_id: int, n: int, now: datetime, kind: str = "rule") -> None:
    with runtime.sessions.begin() as s:
        for i in range(n):
            outbox.enqueue(s, organisation_id=org_id, now=now, **mail(kind=kind, to_address=f"lead{i}@example.jp"))  # type: ignore[arg-type]


def statuses(runtime: Runtime, org_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from crm.store.outbox import OutboxMail

    with runtime.sessions() as s:
        return dict(s.execute(select(OutboxMail.status, func.count()).where(OutboxMail.organisation_id == org_id).group_by(OutboxMail.status)).all())  # type: ignore[arg-type]


class TestDayBoundary:
    @pytest.mark.parametrize(
        ("zone", "last_minute", "midnight"),
        [
            ("Asia/Tokyo", utc(2026, 12, 2, 14, 59), utc(2026, 12, 2, 15, 0)),
            ("America/New_York", utc(2026, 3, 9, 3, 59), utc(2026, 3, 9, 4, 0)),  # end of the 23-hour day
            ("America/New_York", utc(2026, 11, 2, 4, 59), utc(2026, 11, 2, 5, 0)),  # end of the 25-hour day
            ("Pacific/Chatham", utc(2026, 4, 5, 11, 14), utc(2026, 4, 5, 11, 15)),  # end of the 25-hour day
            ("Pacific/Chatham", utc(2026, 9, 27, 10, 14), utc(2026, 9, 27, 10, 15)),  # end of the 23-hour day
        ],
    )
    def test_over_the_limit_waits_for_local_midnight(self, runtime: Runtime, org, smtp_sink: SmtpSink, zone: str, last_minute: datetime, midnight: datetime) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port, daily_limit=2, time_zone=zone)
        queue_many(runtime, org.id, 3, last_minute)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: last_minute).sent == 2
        assert statuses(runtime, org.id) == {"sent": 2, "waiting_quota": 1}
        with runtime.sessions() as s:
            status = outbox.quota_status(s, org.id, last_minute)
        assert (status.used, status.left, status.limit, status.resets_at) == (2, 0, 2, midnight)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: midnight - timedelta(seconds=1)).sent == 0
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: midnight).sent == 1
        assert statuses(runtime, org.id) == {"sent": 3}
        with runtime.sessions() as s:
            assert outbox.quota_status(s, org.id, midnight).used == 1
        assert len(smtp_sink.received) == 3

    def test_waiting_mail_carries_the_reason_and_the_time(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        now = utc(2026, 12, 3, 3, 0)
        configure(runtime, org.id, port=smtp_sink.port, daily_limit=1)
        with runtime.sessions.begin() as s:
            outbox.enqueue(s, organisation_id=org.id, now=now, lead_id=None, source_id=7, **mail(to_address="a@example.jp"))  # type: ignore[arg-type]
            outbox.enqueue(s, organisation_id=org.id, now=now, source_id=7, **mail(to_address="b@example.jp"))  # type: ignore[arg-type]
        send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: now)
        with runtime.sessions() as s:
            rows = {m.to_address: m for m in outbox.list_for_source(s, org.id, "rule", 7)}
        assert rows["b@example.jp"].status == "waiting_quota" and rows["b@example.jp"].reason == "waiting_for_quota"
        assert rows["b@example.jp"].next_attempt_at == utc(2026, 12, 3, 15, 0)


class TestFormReplyShare:
    def test_form_replies_stop_first(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        now = utc(2026, 12, 3, 3, 0)
        configure(runtime, org.id, port=smtp_sink.port, daily_limit=10)
        assert form_reply_limit(10) == 2 and form_reply_limit(500) == 100
        queue_many(runtime, org.id, 5, now, kind="form_reply")  # a spammed form
        with runtime.sessions.begin() as s:
            for i in range(8):
                outbox.enqueue(s, organisation_id=org.id, now=now, **mail(kind="rule", to_address=f"rule{i}@example.jp"))  # type: ignore[arg-type]
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: now).sent == 10
        with runtime.sessions() as s:
            status = outbox.quota_status(s, org.id, now)
        assert (status.used, status.form_replies_used, status.form_replies_limit) == (10, 2, 2)
        assert statuses(runtime, org.id) == {"sent": 10, "waiting_quota": 3}  # every rule mail went out


class TestConcurrentReservations:
    def test_50_threads_against_500_take_exactly_500(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        taken: list[bool] = []
        lock = threading.Lock()
        start = threading.Barrier(50)

        def sender() -> None:
            start.wait()
            for _ in range(14):  # 700 attempts in all
                with runtime.sessions.begin() as s:
                    ok = reserve_quota(s, org.id, "2026-12-03", 500, form_reply=False, form_limit=100)
                with lock:
                    taken.append(ok)

        threads = [threading.Thread(target=sender) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert taken.count(True) == 500 and len(taken) == 700
        with runtime.sessions() as s:
            row = s.get(MailQuotaDay, (org.id, "2026-12-03"))
            assert row is not None and row.used == 500

    def test_concurrent_senders_deliver_exactly_the_limit(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        """Whole send passes at once (claim, SMTP, outcome), through the real server."""
        now = datetime.now(UTC)
        configure(runtime, org.id, port=smtp_sink.port, daily_limit=30)
        queue_many(runtime, org.id, 45, now)
        threads = [threading.Thread(target=send_pass, args=(runtime.sessions, runtime.secrets), kwargs={"allow_private": True}) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(smtp_sink.received) == 30 and len({r.rcpt_tos[0] for r in smtp_sink.received}) == 30
        assert statuses(runtime, org.id) == {"sent": 30, "waiting_quota": 15}
