"""Spec part A through the API and the CRM calendar, on a real Dovecot: the invitations a
user receives, answered, updated, moved and cancelled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crm.domain.ports import CalendarObject
from crm.services import calendar
from mail_adapter.invites import read_invites
from tests.factories import connect_mailbox, make_user

TB = Path(__file__).resolve().parent / "data" / "corpora" / "thunderbird"
RIE = Path(__file__).resolve().parent / "data" / "corpora" / "recurring-ical-events"
MARCH = {"start": "2022-03-15T00:00:00Z", "end": "2022-03-20T00:00:00Z"}


def corpus(name: str, **replace: str) -> bytes:
    raw = (TB / name).read_bytes()
    for old, new in replace.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


@pytest.fixture()
def receiver(runtime, org, client, imap_user):  # type: ignore[no-untyped-def]
    """The invited user of the Thunderbird fixtures, with their mailbox connected."""
    user = make_user(runtime, org, "receiver@example.com")
    assert connect_mailbox(client, user, imap_user).status_code == 201
    return user


def deliver(dovecot, imap_user, raw: bytes) -> int:  # type: ignore[no-untyped-def]
    return dovecot.append(imap_user.name, "INBOX", raw)


def open_invite(client: TestClient, user, uid: int) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/calendar/invitation", params={"uid": uid}, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["invitations"]


def accept(client: TestClient, user, uid: int, partstat: str = "ACCEPTED") -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/calendar/answer", json={"uid": uid, "partstat": partstat}, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


class _Sink:
    def __init__(self, reply: str) -> None:
        self.reply, self.port = reply, 0
        self.messages: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.reply.startswith("250"):
            self.messages.append(envelope.content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.reply


@contextmanager
def smtp_sink(port: int | None = None, reply: str = "250 OK") -> Iterator[_Sink]:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it is given."""
    from aiosmtpd.controller import Controller

    from tests.servers.net import free_port

    sink = _Sink(reply)
    sink.port = port or free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def occurrences(client: TestClient, user, window: dict | None = None) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    events = client.get("/api/v1/calendar/events", params=window or MARCH, headers=user.headers).json()
    return [(e["start_utc"], e["own_partstat"]) for e in events]


class TestAnswer:
    def test_A04_accept_stores_in_the_crm_calendar_or_only_tracks(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = deliver(dovecot, imap_user, corpus("single-event.eml"))
        card = open_invite(client, receiver, uid)[0]
        assert card["kind"] == "new" and card["verified"] and card["invited_partstat"] == "NEEDS-ACTION"
        assert card["start"].startswith("2022-03-16T20:00:00+09:00")  # 11:00Z shown in the user's zone (Asia/Tokyo)
        result = accept(client, receiver, uid)
        assert result["events"][0]["in_calendar"] and result["events"][0]["own_partstat"] == "ACCEPTED"
        assert occurrences(client, receiver) == [("2022-03-16T11:00:00+00:00", "ACCEPTED")]
        accept(client, receiver, uid)  # accepting twice gives one event
        assert len(occurrences(client, receiver)) == 1
        # the version just accepted is the current one, not "outdated"
        again = open_invite(client, receiver, uid)[0]
        assert again["kind"] == "current" and again["own_partstat"] == "ACCEPTED" and again["in_calendar"]

    def test_A04_with_the_setting_off_nothing_in_the_calendar_but_tracked(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        assert client.put("/api/v1/calendar/settings", json={"destination": "none"}, headers=receiver.headers).json()["destination"] == "none"
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        assert occurrences(client, receiver) == []
        cancel = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("cancel-repeat-event.eml")))[0]
        assert cancel["kind"] == "cancel" and cancel["applied"]

    def test_A05_A27_the_reply_carries_only_the_users_answer(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = deliver(dovecot, imap_user, corpus("outlook-test-invite.eml"))
        card = open_invite(client, receiver, uid)[0]
        ics = accept(client, receiver, uid, "TENTATIVE")["reply_ics"]
        assert "METHOD:REPLY" in ics and "BEGIN:VALARM" not in ics
        assert len(re.findall(r"^ATTENDEE", ics, re.M)) == 1 and "PARTSTAT=TENTATIVE" in ics and "receiver@example.com" in ics
        unfolded = ics.replace("\r\n ", "")
        assert f"UID:{card['uid']}" in unfolded and f"SEQUENCE:{card['sequence']}" in unfolded and "DTSTAMP:" in unfolded

    def test_A05_the_reply_goes_through_the_users_smtp_server(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with smtp_sink() as sink:
            client.put("/api/v1/calendar/settings", json={"destination": "crm", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_security": "plain"}, headers=receiver.headers)
            result = accept(client, receiver, deliver(dovecot, imap_user, corpus("single-event.eml")))
            assert result["reply_sent"] and result["reply"]["status"] == "sent" and len(sink.messages) == 1
            assert b"method=\"REPLY\"" in sink.messages[0] and b"To: sender@example.com" in sink.messages[0]
            assert sink.envelopes == [("receiver@example.com", ["sender@example.com"])]
        (listed,) = client.get("/api/v1/calendar/replies", headers=receiver.headers).json()
        assert listed["status"] == "sent" and listed["kind"] == "itip_reply" and listed["to_address"] == "sender@example.com"

    def test_A05_a_reply_the_server_does_not_take_is_kept_and_sent_once_later(self, runtime, org, client, receiver, member, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        """The mail server is down when the rep accepts: the answer is recorded, the reply
        waits in the outbox and the senders' next pass delivers it, once; it is the rep's own
        answer, so the organisation's daily quota is not touched."""
        from datetime import timedelta

        from sqlalchemy import func, select

        from crm.store.base import utcnow
        from crm.store.outbox import MailQuotaDay
        from tests.servers.net import free_port
        from widget_api.outbox_sender import send_pass

        port = free_port()  # nothing listens yet
        client.put("/api/v1/calendar/settings", json={"destination": "crm", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "plain"}, headers=receiver.headers)
        result = accept(client, receiver, deliver(dovecot, imap_user, corpus("single-event.eml")))
        assert not result["reply_sent"] and result["reply"]["status"] == "queued" and result["reply"]["next_attempt_at"]
        assert result["events"][0]["own_partstat"] == "ACCEPTED" and occurrences(client, receiver) == [("2022-03-16T11:00:00+00:00", "ACCEPTED")]
        assert client.get("/api/v1/calendar/replies", headers=member.headers).json() == []  # another rep's replies are not theirs to see
        with smtp_sink(port) as sink:
            later = lambda: utcnow() + timedelta(minutes=10)  # noqa: E731 - past the backoff
            first = send_pass(runtime.sessions, runtime.secrets, clock=later, allow_private=True)
            again = send_pass(runtime.sessions, runtime.secrets, clock=later, allow_private=True)
        assert (first.sent, again.sent) == (1, 0) and len(sink.messages) == 1 and b"method=\"REPLY\"" in sink.messages[0]
        (listed,) = client.get("/api/v1/calendar/replies", headers=receiver.headers).json()
        assert listed["status"] == "sent" and listed["attempts"] == 2
        with runtime.sessions() as s:
            assert s.scalar(select(func.coalesce(func.sum(MailQuotaDay.used), 0))) == 0

    def test_A05_a_refused_reply_is_failed_with_the_servers_reason(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with smtp_sink(reply="554 5.7.1 not from you") as sink:
            client.put("/api/v1/calendar/settings", json={"destination": "crm", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_security": "plain"}, headers=receiver.headers)
            result = accept(client, receiver, deliver(dovecot, imap_user, corpus("single-event.eml")))
        assert not result["reply_sent"] and result["reply"]["status"] == "failed" and "554" in result["reply"]["reason"]
        assert result["events"][0]["own_partstat"] == "ACCEPTED"

    def test_A05_the_reply_is_refused_towards_a_private_address_unless_allowed(self, runtime, org, receiver) -> None:  # type: ignore[no-untyped-def]
        """The reply goes out by mail_adapter.smtp: the server's address is checked at send
        time, and no connection is made to our own network (the mail stays queued)."""
        import socket

        from crm.services import outbox
        from crm.store.calendar import CalendarSetting
        from crm.store.outbox import OutboxMail
        from widget_api.outbox_sender import send_one

        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            with runtime.sessions.begin() as s:
                s.add(CalendarSetting(user_id=receiver.id, destination="crm", send_replies=True, smtp_host="localhost", smtp_port=listener.getsockname()[1], smtp_security="plain", calendar_last_uid=0))
                row = outbox.enqueue_reply(s, organisation_id=org.id, user_id=receiver.id, from_address="receiver@example.com", to_address="sender@example.com", subject="Accepted: x", message_id="<r1@example.com>", raw=b"Subject: x\r\n\r\nx\r\n")
            result = send_one(runtime.sessions, runtime.secrets, row.id, allow_private=False)
            with pytest.raises(BlockingIOError):
                listener.accept()
        with runtime.sessions() as s:
            kept = s.get(OutboxMail, row.id)
            assert result.retried == 1 and kept is not None and kept.status == "queued" and "private" in (kept.reason or "")


class TestUpdates:
    def test_A06_A07_A08_sequence_and_dtstamp_decide(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        minor = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("update-minor.eml")))[0]
        assert minor["kind"] == "update_minor" and minor["applied"] and minor["own_partstat"] == "ACCEPTED" and not minor["needs_reconfirm"]
        major = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("update-major.eml")))[0]
        assert major["kind"] == "update_major" and major["applied"] and major["needs_reconfirm"]
        assert occurrences(client, receiver)[0][0] == "2022-03-16T05:00:00+00:00"
        late_minor = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("update-minor.eml", **{"Message-ID: <": "Message-ID: <again-"})))[0]
        assert late_minor["kind"] == "outdated" and not late_minor["applied"]  # SEQUENCE 0 after 2, whatever the order

    def test_A10_an_override_moves_one_instance_only(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        card = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("exception-major.eml")))[0]
        assert card["applied"] and card["recurrence_id"] == "2022-03-17T11:00:00+00:00"
        assert [o[0] for o in occurrences(client, receiver)] == ["2022-03-16T11:00:00+00:00", "2022-03-17T05:00:00+00:00", "2022-03-18T11:00:00+00:00"]
        assert [o[1] for o in occurrences(client, receiver)] == ["ACCEPTED"] * 3

    def test_A11_an_override_before_its_master(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        orphan = deliver(dovecot, imap_user, corpus("exception-major.eml"))
        assert open_invite(client, receiver, orphan)[0]["kind"] == "new"
        accept(client, receiver, orphan)
        assert [o[0] for o in occurrences(client, receiver)] == ["2022-03-17T05:00:00+00:00"]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        assert [o[0] for o in occurrences(client, receiver)] == ["2022-03-16T11:00:00+00:00", "2022-03-17T05:00:00+00:00", "2022-03-18T11:00:00+00:00"]


class TestCancel:
    def test_A13_cancelling_a_series_cancels_its_overrides(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        open_invite(client, receiver, deliver(dovecot, imap_user, corpus("exception-major.eml")))
        card = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("cancel-repeat-event.eml")))[0]
        assert card["kind"] == "cancel" and card["applied"]
        assert occurrences(client, receiver) == []

    @pytest.mark.parametrize(("rid", "left"), [("RECURRENCE-ID:20220317T110000Z", 2), ("RECURRENCE-ID;RANGE=THISANDFUTURE:20220317T110000Z", 1)])
    def test_A14_A16_cancelling_one_instance_or_this_and_future(self, client, receiver, dovecot, imap_user, rid: str, left: int) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        raw = corpus("cancel-repeat-event.eml", **{"STATUS:CANCELLED\r\n": "", "SEQUENCE:1\r\n": f"SEQUENCE:1\r\n{rid}\r\n"})
        assert rid.encode() in raw
        card = open_invite(client, receiver, deliver(dovecot, imap_user, raw))[0]
        assert card["applied"]
        assert len(occurrences(client, receiver)) == left

    def test_A15_cancel_of_an_unknown_uid_does_nothing(self, client, receiver, dovecot, imap_user, session) -> None:  # type: ignore[no-untyped-def]
        from sqlalchemy import func, select

        from crm.store.calendar import CalendarEvent

        card = open_invite(client, receiver, deliver(dovecot, imap_user, corpus("cancel-single-event.eml")))[0]
        assert card["kind"] == "unknown_cancel" and not card["applied"]
        assert session.scalar(select(func.count()).select_from(CalendarEvent)) == 0


class TestWhoMayChange:
    def test_A17_a_change_from_someone_else_is_unverified(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        forged = corpus("update-major.eml", **{"From: Sender <sender@example.com>": "From: Mallory <mallory@evil.example>"})
        assert b"mallory@evil.example" in forged
        card = open_invite(client, receiver, deliver(dovecot, imap_user, forged))[0]
        assert not card["verified"] and "sender_not_organizer" in card["reasons"] and not card["applied"]
        assert occurrences(client, receiver)[0][0] == "2022-03-16T11:00:00+00:00"

    def test_A18_a_change_that_failed_authentication_is_not_applied(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
        failed = b"Authentication-Results: mx.example.com; dmarc=fail header.from=example.com; spf=fail smtp.mailfrom=evil.example\r\n" + corpus("update-major.eml")
        card = open_invite(client, receiver, deliver(dovecot, imap_user, failed))[0]
        assert "sender_not_authenticated" in card["reasons"] and not card["applied"]

    def test_A28_invitations_sent_by_the_user_are_not_imported(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        own = corpus("single-event.eml", **{"sender@example.com": "receiver@example.com"})
        assert open_invite(client, receiver, deliver(dovecot, imap_user, own))[0]["kind"] == "own"


class TestServiceRules:
    def _principal(self, runtime, org):  # type: ignore[no-untyped-def]
        from crm.domain.principal import Principal

        user = make_user(runtime, org, "receiver@example.com")
        return Principal(user.id, org.id, user.email, time_zone="Europe/Berlin")

    def test_A12_a_utc_recurrence_id_matches_a_zoned_instance(self, runtime, org) -> None:  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        master = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:z1\r\nSEQUENCE:0\r\nDTSTAMP:20220301T000000Z\r\n"
            "DTSTART;TZID=Europe/Berlin:20220316T120000\r\nDTEND;TZID=Europe/Berlin:20220316T130000\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"
            "ORGANIZER:mailto:o@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:receiver@example.com\r\nSUMMARY:m\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        override = master.replace("RRULE:FREQ=DAILY;COUNT=3\r\n", "RECURRENCE-ID:20220317T110000Z\r\n").replace("20220316T120000", "20220317T150000").replace("20220316T130000", "20220317T160000")
        principal = self._principal(runtime, org)
        with runtime.sessions.begin() as s:
            calendar.answer(s, principal, read_invites([CalendarObject(master.encode())])[0][0], "ACCEPTED")
            calendar.answer(s, principal, read_invites([CalendarObject(override.encode())])[0][0], "ACCEPTED")
            got = [o["start_utc"] for o in calendar.list_occurrences(s, principal, datetime(2022, 3, 15, tzinfo=UTC), datetime(2022, 3, 20, tzinfo=UTC))]
        assert got == ["2022-03-16T11:00:00+00:00", "2022-03-17T14:00:00+00:00", "2022-03-18T11:00:00+00:00"]

    def test_A24_dst_keeps_the_wall_clock(self, runtime, org) -> None:  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        ics = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:dst\r\nDTSTAMP:20220301T000000Z\r\n"
            "DTSTART;TZID=Europe/Berlin:20220324T090000\r\nDTEND;TZID=Europe/Berlin:20220324T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
            "EXDATE:20220407T070000Z\r\nRDATE;TZID=Europe/Berlin:20220408T090000\r\nORGANIZER:mailto:o@example.com\r\nSUMMARY:weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        principal = self._principal(runtime, org)
        with runtime.sessions.begin() as s:
            calendar.answer(s, principal, read_invites([CalendarObject(ics.encode())])[0][0], "ACCEPTED")
            got = [o["start"] for o in calendar.list_occurrences(s, principal, datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 5, 1, tzinfo=UTC))]
        # 09:00 Berlin before and after the change to summer time; the 7 April instance excluded
        # by an EXDATE written in UTC; the RDATE added.
        assert got == ["2022-03-24T09:00:00+01:00", "2022-03-31T09:00:00+02:00", "2022-04-08T09:00:00+02:00"]

    def test_A19_a_reply_updates_only_that_attendee_when_newer(self, runtime, org) -> None:  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from crm.store.calendar import EventAttendee

        principal = self._principal(runtime, org)
        request = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:r1\r\nSEQUENCE:0\r\nDTSTAMP:20220301T000000Z\r\n"
            "DTSTART:20220316T110000Z\r\nDTEND:20220316T120000Z\r\nORGANIZER:mailto:receiver@example.com\r\n"
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:receiver@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@customer.example\r\n"
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@customer.example\r\nSUMMARY:demo\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )

        def reply(partstat: str, stamp: str) -> str:
            return (
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:r1\r\nSEQUENCE:0\r\n"
                f"DTSTAMP:{stamp}\r\nORGANIZER:mailto:receiver@example.com\r\nATTENDEE;PARTSTAT={partstat}:mailto:bob@customer.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            )

        with runtime.sessions.begin() as s:
            row = calendar.answer(s, principal, read_invites([CalendarObject(request.encode())])[0][0], "ACCEPTED")
            for partstat, stamp, applied in (("ACCEPTED", "20220302T000000Z", True), ("DECLINED", "20220301T120000Z", False)):
                invite = read_invites([CalendarObject(reply(partstat, stamp).encode())])[0][0]
                view = calendar.apply(s, principal, calendar.classify(s, principal, invite, {"bob@customer.example"}, None))
                assert view.applied is applied
            states = {a.email: a.partstat for a in s.scalars(select(EventAttendee).where(EventAttendee.event_id == row.id))}
        assert states["bob@customer.example"] == "ACCEPTED" and states["carol@customer.example"] == "NEEDS-ACTION"


def test_a_billion_occurrence_rrule_is_bounded(runtime, org) -> None:  # type: ignore[no-untyped-def]
    import time
    from datetime import UTC, datetime

    from crm.domain.principal import Principal

    user = make_user(runtime, org, "receiver@example.com")
    principal = Principal(user.id, org.id, user.email)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20220301T000000Z\r\nDTSTART:20220301T000000Z\r\n"
        "DTEND:20220301T000001Z\r\nRRULE:FREQ=SECONDLY;COUNT=1000000000\r\nORGANIZER:mailto:o@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    start = time.process_time()  # CPU, not wall time: a machine shared with other runs does not make it fail
    with runtime.sessions.begin() as s:
        calendar.answer(s, principal, read_invites([CalendarObject(ics.encode())])[0][0], "ACCEPTED")
        got = calendar.list_occurrences(s, principal, datetime(2022, 3, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC))
    assert len(got) == calendar.MAX_OCCURRENCES and time.process_time() - start < 10


def test_an_hourly_series_is_expanded_whole_and_quickly(runtime, org) -> None:  # type: ignore[no-untyped-def]
    import time
    from datetime import UTC, datetime, timedelta

    from crm.domain.principal import Principal

    user = make_user(runtime, org, "hourly@example.com")
    principal = Principal(user.id, org.id, user.email)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:h\r\nDTSTAMP:20220301T000000Z\r\nDTSTART:20220301T090000Z\r\n"
        "DTEND:20220301T093000Z\r\nRRULE:FREQ=HOURLY;COUNT=1500\r\nEXDATE:20220301T100000Z\r\nORGANIZER:mailto:o@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    start = time.process_time()
    with runtime.sessions.begin() as s:
        calendar.answer(s, principal, read_invites([CalendarObject(ics.encode())])[0][0], "ACCEPTED")
        got = calendar.list_occurrences(s, principal, datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 6, 1, tzinfo=UTC))
    spent = time.process_time() - start
    starts = [o["start_utc"] for o in got]
    assert len(got) == 1499 and starts == sorted(starts)
    assert starts[0] == "2022-03-01T09:00:00+00:00" and "2022-03-01T10:00:00+00:00" not in starts
    assert starts[-1] == (datetime(2022, 3, 1, 9, tzinfo=UTC) + timedelta(hours=1499)).isoformat()
    assert spent < 2  # CPU: the library's lazy walk took 5.7 s for these 1,500


def test_the_inbox_scan_applies_updates_that_arrive_later(client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
    accept(client, receiver, deliver(dovecot, imap_user, corpus("repeat-event.eml")))
    first = client.post("/api/v1/calendar/scan", headers=receiver.headers).json()
    assert first["messages"] == 1  # the invitation itself: already tracked, nothing to apply
    deliver(dovecot, imap_user, b"From: a@b.example\r\nSubject: no calendar\r\n\r\nhello\r\n")
    deliver(dovecot, imap_user, corpus("update-major.eml"))
    second = client.post("/api/v1/calendar/scan", headers=receiver.headers).json()
    assert second == {"messages": 1, "applied": 1, "last_uid": 3}
    assert occurrences(client, receiver)[0][0] == "2022-03-16T05:00:00+00:00"
    assert client.post("/api/v1/calendar/scan", headers=receiver.headers).json()["messages"] == 0


def _request(uid: str, start: str, end: str) -> bytes:
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20220301T000000Z\r\nDTSTART{start}\r\n"
        f"DTEND{end}\r\nORGANIZER:mailto:o@example.com\r\nATTENDEE:mailto:receiver@example.com\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


EXTREME = [
    (":99991231T230000Z", ":99991231T235900Z"), (":00010101T000000Z", ":00010101T010000Z"), (";VALUE=DATE:99991231", ";VALUE=DATE:99991231"),
    (";VALUE=DATE:00010101", ";VALUE=DATE:00010102"), (":99991231T230000", ":99991231T235900"), (";TZID=Asia/Tokyo:00010101T000000", ";TZID=Asia/Tokyo:00010101T010000"),
    (":20220316T110000Z", ":99991231T235900Z"),
]


class TestDatesOutOfRange:
    """Year 9999 or 0001 in an invitation: refused on the way in; a row stored before that
    rule never breaks a read."""

    @pytest.mark.parametrize(("start", "end"), EXTREME)
    def test_such_an_event_is_unreadable_not_an_error(self, start: str, end: str) -> None:
        invites, warnings = read_invites([CalendarObject(_request("far", start, end))])
        assert invites == [] and warnings and warnings[0].startswith("unreadable_event:0:")

    def test_no_invitation_can_be_made_with_one(self) -> None:
        from datetime import UTC, datetime

        from crm.domain.invites import DateOutOfRange, InviteDraft

        with pytest.raises(DateOutOfRange):
            InviteDraft(method="REQUEST", uid="x", sequence=0, dtstamp=None, start=datetime(9999, 12, 31, tzinfo=UTC))

    def test_answering_one_through_the_api_is_a_404_and_the_calendar_still_reads(self, client, receiver, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        raw = b"From: o@example.com\r\nTo: receiver@example.com\r\nSubject: far\r\nMessage-ID: <far@example.com>\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
        uid = deliver(dovecot, imap_user, raw + _request("far", ":99991231T230000Z", ":99991231T235900Z"))
        assert client.get("/api/v1/calendar/invitation", params={"uid": uid}, headers=receiver.headers).json()["invitations"] == []
        answered = client.post("/api/v1/calendar/answer", json={"uid": uid, "partstat": "ACCEPTED"}, headers=receiver.headers)
        assert answered.status_code == 404 and answered.json()["type"] == "no_invitation"
        assert client.get("/api/v1/calendar/events", params=MARCH, headers=receiver.headers).status_code == 200

    @pytest.mark.parametrize(("start", "end"), [("9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z"), ("0001-01-01T00:00:00", "0001-01-02T00:00:00")])
    def test_a_window_at_the_ends_of_time_is_a_400(self, client, receiver, start: str, end: str) -> None:  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/calendar/events", params={"start": start, "end": end}, headers=receiver.headers)
        assert response.status_code == 400 and response.json()["type"] == "date_out_of_range"

    def test_a_row_stored_with_year_9999_leaves_the_other_events_readable(self, client, receiver, runtime) -> None:  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        from crm.domain.principal import Principal
        from crm.store.calendar import CalendarEvent

        principal = Principal(receiver.id, receiver.organisation_id, receiver.email)
        with runtime.sessions.begin() as s:
            calendar.answer(s, principal, read_invites([CalendarObject(_request("fine", ":20220316T110000Z", ":20220316T120000Z"))])[0][0], "ACCEPTED")
            far = _request("far", ":99991231T230000Z", ":99991231T235900Z").decode()
            s.add(CalendarEvent(  # as an earlier version stored it
                organisation_id=receiver.organisation_id, user_id=receiver.id, uid="far", instance="", own_partstat="ACCEPTED", in_calendar=True, expanded=False,
                start_utc=datetime(9999, 12, 31, 23, tzinfo=UTC), end_utc=datetime(9999, 12, 31, 23, 59, tzinfo=UTC), ics=far,
            ))
        events = client.get("/api/v1/calendar/events", params=MARCH, headers=receiver.headers)
        assert events.status_code == 200 and [e["uid"] for e in events.json()] == ["fine"]
        assert client.get("/api/v1/calendar/events", params=MARCH, headers=receiver.headers).json() == events.json()
