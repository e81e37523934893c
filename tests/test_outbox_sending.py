"""The outbox's sender against a real SMTP server on loopback (aiosmtpd): the bytes received,
retries, refusals, and connections cut during and after DATA."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy

from sqlalchemy import select

from crm.services import outbox
from crm.store.outbox import MailSuppression, OutboxMail
from tests.servers.smtp import SmtpSink
from tests.test_outbox import configure, mail
from widget_api.deps import Runtime
from widget_api.outbox_sender import send_pass

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def queue(runtime: Runtime, org_id: int, **extra: object) -> int:
    with runtime.sessions.begin() as s:
        result = outbox.enqueue(s, organisation_id=org_id, now=NOW, **mail(**extra))  # type: ignore[arg-type]
    assert result.outbox_id is not None
    return result.outbox_id


def row(runtime: Runtime, outbox_id: int) -> OutboxMail:
    with runtime.sessions() as s:
        found = s.get(OutboxMail, outbox_id)
        assert found is not None
        return found


class TestDelivery:
    def test_utf8_bytes_received_as_stored(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id, html="<p>山田様</p>")
        result = send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock())
        assert result.sent == 1 and len(smtp_sink.received) == 1
        got = smtp_sink.received[0]
        stored = row(runtime, oid)
        assert got.data == stored.raw  # byte for byte (aiosmtpd gives back the unstuffed content)
        assert got.mail_from == "info@acme.example" and got.rcpt_tos == ["Taro@example.jp"]
        parsed = email.message_from_bytes(got.data, policy=policy.default)
        assert str(parsed["Subject"]) == "資料のご案内" and parsed["From"].addresses[0].display_name == "アクメ 営業部"
        assert parsed["List-Unsubscribe"].startswith("<https://crm.acme.example/u/") and parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert b"Subject: =?utf-8?b?" in got.data
        plain = parsed.get_body(("plain",))
        assert plain is not None and plain.get_content_charset() == "utf-8" and "ありがとうございます。" in plain.get_content()
        assert stored.status == "sent" and stored.sent_at == NOW and stored.attempts == 1

    def test_iso_2022_jp_received(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        queue(runtime, org.id, charset="iso-2022-jp")
        send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock())
        data = smtp_sink.received[0].data
        assert b"Subject: =?iso-2022-jp?b?" in data and b'charset="iso-2022-jp"' in data and b"\x1b$B" in data
        parsed = email.message_from_bytes(data, policy=policy.default)
        assert str(parsed["Subject"]) == "資料のご案内" and "山田様" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


class TestFailures:
    def test_4xx_retried_with_backoff_then_sent(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id)
        smtp_sink.faults[:] = ["temporary", "temporary"]
        clock = Clock()
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).retried == 1
        first = row(runtime, oid)
        assert first.status == "queued" and first.next_attempt_at == NOW + timedelta(minutes=1) and "451" in (first.reason or "")
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).retried == 0  # not due yet
        clock.at = NOW + timedelta(minutes=1)
        send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock)
        assert row(runtime, oid).next_attempt_at == clock.at + timedelta(minutes=2)  # doubled
        clock.at += timedelta(minutes=2)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).sent == 1
        assert len(smtp_sink.received) == 1 and row(runtime, oid).attempts == 3
        with runtime.sessions() as s:
            assert outbox.quota_status(s, org.id, clock.at).used == 1  # the refused tries gave their unit back

    def test_5xx_failed_and_hard_bounce_suppressed(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id)
        later = queue(runtime, org.id, kind="bulk")  # the same address, still queued
        smtp_sink.faults[:] = ["reject_rcpt"]
        result = send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock(), max_mails=1)
        assert result.failed == 1 and smtp_sink.received == []
        failed = row(runtime, oid)
        assert failed.status == "failed" and "550" in (failed.reason or "")
        with runtime.sessions() as s:
            assert s.scalar(select(MailSuppression.reason).where(MailSuppression.address_norm == "taro@example.jp")) == "hard_bounce"
            assert outbox.quota_status(s, org.id, NOW).used == 0
        assert (row(runtime, later).status, row(runtime, later).reason) == ("skipped", "hard_bounce")

    def test_connection_refused_is_retried(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        from tests.servers.net import free_port

        configure(runtime, org.id, port=free_port())  # nothing listens there
        oid = queue(runtime, org.id)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock()).retried == 1
        assert row(runtime, oid).status == "queued"


class TestExactlyOnce:
    def test_cut_mid_data_is_resent_once(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id)
        smtp_sink.faults[:] = ["cut_mid_data"]
        clock = Clock()
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).retried == 1
        assert smtp_sink.received == [] and row(runtime, oid).status == "queued"
        clock.at += timedelta(minutes=1)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).sent == 1
        clock.at += timedelta(hours=1)
        send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock)
        assert len(smtp_sink.received) == 1 and row(runtime, oid).status == "sent"
        assert email.message_from_bytes(smtp_sink.received[0].data)["Message-ID"] == row(runtime, oid).message_id

    def test_cut_after_250_is_sent_and_never_again(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id)
        smtp_sink.faults[:] = ["cut_after_250"]
        clock = Clock()
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock).sent == 1
        for _ in range(3):
            clock.at += timedelta(hours=1)
            send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=clock)
        assert len(smtp_sink.received) == 1 and row(runtime, oid).status == "sent"

    def test_sender_died_after_data_is_never_resent(self, runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        """The process died between the server's 250 and recording it: the row is still
        "sending". It becomes "unconfirmed" once stale, and is not sent a second time."""
        from crm.domain.ports import SmtpConfig
        from mail_adapter.smtp import SmtpSubmission

        configure(runtime, org.id, port=smtp_sink.port)
        oid = queue(runtime, org.id)
        with runtime.sessions.begin() as s:
            claim = outbox.claim_next(s, runtime.secrets, NOW)
        assert claim is not None
        SmtpSubmission(SmtpConfig("127.0.0.1", smtp_sink.port, "none"), allow_private=True).send(claim.envelope_from, claim.recipient, claim.raw)
        # ... and the sender is gone. Another one runs while the row is fresh, then later:
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock(NOW + timedelta(minutes=1))).sent == 0
        result = send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock(NOW + outbox.STALE_AFTER + timedelta(seconds=1)))
        assert result.recovered == 1 and result.sent == 0
        assert len(smtp_sink.received) == 1
        assert (row(runtime, oid).status, row(runtime, oid).reason) == ("unconfirmed", "interrupted_while_sending")


class TestSecurity:
    """STARTTLS and implicit TLS with AUTH, the certificate checked against the test CA."""

    def _send(self, runtime: Runtime, org_id: int, sink: SmtpSink, security: str, password: str) -> int:
        from mail_adapter.smtp import SmtpSubmission

        with runtime.sessions.begin() as s:
            outbox.save_smtp_settings(
                s, org_id, runtime.secrets, host="127.0.0.1", port=sink.port, security=security, username="mailer", password=password,
                from_address="info@acme.example", public_url="https://crm.acme.example",
            )
        oid = queue(runtime, org_id)
        context = sink.client_context
        send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock(), connect=lambda config: SmtpSubmission(config, context, allow_private=True))
        return oid

    def test_starttls_and_auth(self, runtime: Runtime, org, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from tests.servers.smtp import smtp_server

        with smtp_server("starttls", {"mailer": "pw-1"}, tmp_path) as sink:
            oid = self._send(runtime, org.id, sink, "starttls", "pw-1")
            assert len(sink.received) == 1 and row(runtime, oid).status == "sent"

    def test_implicit_tls_wrong_password_waits(self, runtime: Runtime, org, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from tests.servers.smtp import smtp_server

        with smtp_server("tls", {"mailer": "pw-1"}, tmp_path) as sink:
            oid = self._send(runtime, org.id, sink, "tls", "wrong")
            assert sink.received == []
            assert (row(runtime, oid).status, row(runtime, oid).reason) == ("queued", "the SMTP server refused the login")  # retried later
            oid2 = self._send(runtime, org.id, sink, "tls", "pw-1")
            assert len(sink.received) == 1 and row(runtime, oid2).status == "sent"


class TestServerAddress:
    """The server's name is resolved and checked at every connect (DNS rebinding: it may lead
    elsewhere than when the settings were saved), and the connection goes to that address."""

    def _settings(self, runtime: Runtime, org_id: int, port: int, security: str = "none") -> None:
        with runtime.sessions.begin() as s:
            outbox.save_smtp_settings(s, org_id, runtime.secrets, host="localhost", port=port, security=security, from_address="info@acme.example", public_url="https://crm.acme.example")

    def test_a_name_leading_to_a_private_address_is_refused_at_send_time(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        import socket

        with socket.create_server(("127.0.0.1", 0)) as listener:  # would see any connection attempt
            listener.setblocking(False)
            self._settings(runtime, org.id, listener.getsockname()[1])
            oid = queue(runtime, org.id)
            result = send_pass(runtime.sessions, runtime.secrets, clock=Clock())  # private addresses not allowed
            assert (result.sent, result.retried) == (0, 1)
            try:
                listener.accept()[0].close()
                connected = True
            except BlockingIOError:
                connected = False
            assert not connected
        got = row(runtime, oid)
        assert got.status == "queued" and got.reason is not None and "loopback, private or reserved" in got.reason
        assert got.next_attempt_at is not None and got.next_attempt_at > NOW  # retried with backoff, the unit given back
        with runtime.sessions() as s:
            assert outbox.quota_status(s, org.id, NOW).used == 0

    def test_by_name_when_allowed_and_tls_checks_the_name(self, runtime: Runtime, org, tmp_path, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        from mail_adapter.smtp import SmtpSubmission
        from tests.servers.smtp import smtp_server

        self._settings(runtime, org.id, smtp_sink.port)
        queue(runtime, org.id)
        assert send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=Clock()).sent == 1 and len(smtp_sink.received) == 1
        for security in ("tls", "starttls"):
            (tmp_path / security).mkdir()
            with smtp_server(security, None, tmp_path / security) as sink:
                self._settings(runtime, org.id, sink.port, security)
                oid = queue(runtime, org.id, dedupe_key=security)
                context = sink.client_context
                send_pass(runtime.sessions, runtime.secrets, clock=Clock(), connect=lambda config: SmtpSubmission(config, context, allow_private=True))  # noqa: B023
                assert row(runtime, oid).status == "sent" and len(sink.received) == 1
                assert sink.server_names[-1] == "localhost"  # the name went as SNI (the certificate checked against it); [0]: the controller's own probe


def test_outbox_send_command(runtime: Runtime, org, smtp_sink: SmtpSink, database_url: str) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    configure(runtime, org.id, port=smtp_sink.port)
    queue(runtime, org.id)
    env = {**os.environ, "DATABASE_URL": database_url, "MAILWIDGET_SECRET_KEY": runtime.settings.secret_keys[0], "MAILWIDGET_ALLOW_PRIVATE_HOSTS": "1"}
    result = subprocess.run([sys.executable, "-m", "widget_api.cli", "outbox-send"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 sent" in result.stdout and len(smtp_sink.received) == 1


def test_the_sender_loop_sends_and_beats(runtime: Runtime, org, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from widget_api import heartbeats
    from widget_api.cli.outbox import LOOP, start_loop

    configure(runtime, org.id, port=smtp_sink.port)
    with runtime.sessions.begin() as s:
        outbox.enqueue(s, organisation_id=org.id, **mail())  # type: ignore[arg-type]
    stop = threading.Event()
    thread = start_loop(runtime, 0.05, stop)
    try:
        deadline = time.monotonic() + 10
        while not smtp_sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(smtp_sink.received) == 1 and heartbeats.status()[LOOP]["ok"]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert LOOP not in heartbeats.status()
