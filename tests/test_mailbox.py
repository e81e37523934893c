"""The mailbox adapter against a real Dovecot: TLS and STARTTLS, a dropped connection retried
once and then reported, one connection reused."""

from __future__ import annotations

import pytest

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import MailboxAuthError, MailboxUnavailable, MessageNotFound
from mail_adapter.mailbox import Mailbox, MailboxPool, MailboxSettings
from tests.mails import business_mail

CTX = ReadContext()


def settings(user, port: int, security: str = "plain", ca_file: str | None = None, password: str | None = None) -> MailboxSettings:  # type: ignore[no-untyped-def]
    return MailboxSettings("127.0.0.1", port, security, user.name, password or user.password, ca_file=ca_file, timeout=5, allow_private=True)


class TestSecurity:
    def test_ssl_and_starttls_verify_the_certificate(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        assert "INBOX" in Mailbox(settings(imap_user, dovecot.tls_port, "ssl", dovecot.ca_file)).check()
        assert "INBOX" in Mailbox(settings(imap_user, dovecot.port, "starttls", dovecot.ca_file)).check()

    def test_an_untrusted_certificate_is_refused(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(MailboxUnavailable):
            Mailbox(settings(imap_user, dovecot.tls_port, "ssl")).check()  # self-signed, no CA given

    def test_a_wrong_password(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(MailboxAuthError):
            Mailbox(settings(imap_user, dovecot.port, password="nope")).check()


class TestDroppedConnection:
    def test_a_drop_in_the_middle_of_a_draft_fetch_is_retried_once(self, dovecot, imap_user, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        proxy = fault_proxy(dovecot)
        box = Mailbox(settings(imap_user, proxy.port))
        box.check()  # warm connection
        # After the command went out: a single-part mail's one FETCH (structure and part 1)
        proxy.cut_on(rb"UID FETCH \d+ \(BODYSTRUCTURE", when="after_forward", times=1)
        opened = box.open_message(MessageRef("INBOX", uid), CTX)
        assert opened.draft.value("email") == "taro.yamada@example.co.jp"
        assert proxy.cuts == 1 and box.connects == 2

    def test_a_second_drop_is_reported(self, dovecot, imap_user, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        proxy = fault_proxy(dovecot)
        box = Mailbox(settings(imap_user, proxy.port))
        proxy.cut_on(rb"UID FETCH", when="before", times=None)
        with pytest.raises(MailboxUnavailable):
            box.open_message(MessageRef("INBOX", uid), CTX)
        assert proxy.cuts == 2
        proxy.reset()  # the server is back: the next read works without any restart
        assert box.open_message(MessageRef("INBOX", uid), CTX).ref.uid == uid


class TestRoundTrips:
    """The draft's FETCHes: the structure with part 1 (bounded) in one, so a single-part mail
    and a text with attachments take one; other wanted parts in a second."""

    @staticmethod
    def fetches(dovecot, imap_user, raw: bytes) -> tuple[list[str], object]:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", raw)
        commands: list[str] = []
        box = Mailbox(settings(imap_user, imap_user.port), on_round_trip=lambda command, _s: commands.append(command))
        box.check()
        commands.clear()
        opened = box.open_message(MessageRef("INBOX", uid), CTX)
        box.close()
        return [c for c in commands if c in ("FETCH", "UID")], opened

    def test_single_part_and_text_with_attachment_take_one_fetch(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        for raw in (business_mail(), business_mail(attachment_bytes=300_000)):
            trips, opened = self.fetches(dovecot, imap_user, raw)
            assert len(trips) == 1, trips
            assert opened.draft.value("email") == "taro.yamada@example.co.jp"  # type: ignore[attr-defined]
            assert opened.bytes_fetched < 8 * 1024  # type: ignore[attr-defined]

    def test_a_part_1_beyond_the_window_is_fetched_whole_in_a_second_trip(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        from mail_adapter.mailbox import FIRST_PART_BYTES

        body = "Hello,\n\n" + "Please find our long request below.\n" * (FIRST_PART_BYTES // 30) + "\nBest regards,\nTaro Yamada\nTel: +81 3-1234-5678\n"
        trips, opened = self.fetches(dovecot, imap_user, business_mail(body=body))
        assert len(trips) == 2, trips
        assert opened.draft.value("phone")  # type: ignore[attr-defined]  # the signature at the end was read
        assert opened.bytes_fetched > len(body)  # type: ignore[attr-defined]

    def test_an_alternative_takes_a_second_trip_for_its_html(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "Taro Yamada <taro.yamada@example.co.jp>", "rep@acme.example", "Hi"
        msg.set_content("Hello,\n\nTaro Yamada\nExample Trading Co., Ltd.\n")
        msg.add_alternative("<p>Hello,</p><p>Taro Yamada<br>Example Trading Co., Ltd.</p>", subtype="html")
        trips, opened = self.fetches(dovecot, imap_user, msg.as_bytes())
        assert len(trips) == 2, trips
        assert opened.draft.value("email") == "taro.yamada@example.co.jp"  # type: ignore[attr-defined]


class TestSelection:
    def test_a_folder_that_does_not_exist_leaves_no_stale_selection(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        box = Mailbox(settings(imap_user, imap_user.port))
        assert box.open_message(MessageRef("INBOX", uid), ReadContext()).ref.uid == uid
        with pytest.raises(MessageNotFound):
            box.open_message(MessageRef("No such folder", 1), ReadContext())
        assert box.open_message(MessageRef("INBOX", uid), ReadContext()).ref.uid == uid  # the failed SELECT left none selected

    @pytest.mark.parametrize("message_id", ["<日本語@例え.jp>", "<a{5}(b)%c@x.example>", '<quote"back\\slash@x.example>'])
    def test_any_message_id_is_searched_safely(self, dovecot, imap_user, message_id: str) -> None:  # type: ignore[no-untyped-def]
        raw = f"From: a@x.example\r\nSubject: s\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n".encode()
        uid = dovecot.append(imap_user.name, "INBOX", raw)
        box = Mailbox(settings(imap_user, imap_user.port))
        opened = box.open_message(MessageRef("INBOX", message_id=message_id), ReadContext())
        assert opened.ref.uid == uid and opened.message_id == message_id
        with pytest.raises(MessageNotFound):
            box.open_message(MessageRef("INBOX", message_id=message_id.replace("@", "-missing@")), ReadContext())


class TestPool:
    def test_bounded_and_reused(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        pool = MailboxPool(size=2)
        users = [dovecot.add_user() for _ in range(3)]
        boxes = [pool.get(settings(u, dovecot.port)) for u in users]
        assert pool.get(settings(users[2], dovecot.port)) is boxes[2]
        assert len(pool) == 2
        for box in boxes[1:]:
            box.check()
        pool.close_all()
        assert len(pool) == 0


class TestXoauth2:
    def test_an_oauth2_access_token_logs_in(self) -> None:
        """Dovecot's oauth2 passdb asks a real introspection endpoint (RFC 7662) about the token."""
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer
        from urllib.parse import parse_qs

        from tests.servers.dovecot import Dovecot

        class Introspection(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                active = form.get("token") == ["good-token"]
                body = json.dumps({"active": active, "username": "oauthuser"} if active else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Introspection)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with Dovecot(oauth2_url=f"http://127.0.0.1:{server.server_address[1]}/introspect") as dovecot:
                dovecot.add_user("oauthuser", "unused-password")
                settings = MailboxSettings("127.0.0.1", dovecot.port, "plain", "oauthuser", "good-token", auth="xoauth2", timeout=5, allow_private=True)
                assert "INBOX" in Mailbox(settings).check()
                with pytest.raises(MailboxAuthError):
                    Mailbox(MailboxSettings("127.0.0.1", dovecot.port, "plain", "oauthuser", "bad-token", auth="xoauth2", timeout=5, allow_private=True)).check()
        finally:
            server.shutdown()


class TestFolderByClientPath:
    """A mail client names folders by its own display path; the server's names differ."""

    def _box(self, server, user) -> Mailbox:  # type: ignore[no-untyped-def]
        return Mailbox(MailboxSettings(user.host, user.port, "plain", user.name, user.password, allow_private=True))

    def test_a_dotted_subfolder_and_a_non_ascii_folder_by_display_path(self, dovecot_dotted) -> None:  # type: ignore[no-untyped-def]
        user = dovecot_dotted.add_user()
        with dovecot_dotted.imap(user.name) as c:
            c.create_folder("Customers.Acme")
            c.create_folder("顧客")
        dovecot_dotted.append(user.name, "Customers.Acme", business_mail(message_id="<sub@example.co.jp>"))
        dovecot_dotted.append(user.name, "顧客", business_mail(message_id="<kokyaku@example.co.jp>"))
        box = self._box(dovecot_dotted, user)
        try:
            # Thunderbird's path for the subfolder, and the modified-UTF-7 spelling of 顧客
            opened = box.open_message(MessageRef("/Customers/Acme", message_id="<sub@example.co.jp>"), ReadContext())
            assert opened.ref.folder == "Customers.Acme" and opened.ref.uid
            opened = box.open_message(MessageRef("&mGdbog-", message_id="kokyaku@example.co.jp"), ReadContext())
            assert opened.ref.folder == "顧客"
            # a UID with the display path reaches the same server folder
            again = box.open_message(MessageRef("Customers/Acme", uid=opened.ref.uid), ReadContext())
            assert again.ref.folder == "Customers.Acme"
        finally:
            box.close()

    def test_a_wrong_hint_falls_back_on_the_message_id_in_every_folder(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        dovecot.append(user.name, "Junk", business_mail(message_id="<moved@example.co.jp>"))
        box = self._box(dovecot, user)
        try:
            opened = box.open_message(MessageRef("Somewhere/Else", message_id="<moved@example.co.jp>"), ReadContext())
            assert opened.ref.folder == "Junk"
            by_use = box.open_message(MessageRef("", message_id="<moved@example.co.jp>", special_use="junk"), ReadContext())
            assert by_use.ref.folder == "Junk"
            with pytest.raises(MessageNotFound):
                box.open_message(MessageRef("INBOX", message_id="<nowhere@example.co.jp>"), ReadContext())
        finally:
            box.close()
