"""The draft of a message read from a real Dovecot through the API: by UID or Message-ID,
without setting \\Seen, without downloading attachments, over one pooled connection."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import connect_mailbox
from tests.mails import business_mail


def draft(client: TestClient, user, **params):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/messages/draft", params=params, headers=user.headers)


class TestConnect:
    def test_connect_lists_folders(self, client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
        response = connect_mailbox(client, member, imap_user)
        assert response.status_code == 201, response.text
        assert "INBOX" in response.json()["folders"]
        # connecting again updates the same account instead of adding one
        assert connect_mailbox(client, member, imap_user).json()["id"] == response.json()["id"]
        assert len(client.get("/api/v1/mailboxes", headers=member.headers).json()) == 1

    def test_a_wrong_password_is_a_clear_4xx_and_nothing_stored(self, client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
        response = connect_mailbox(client, member, imap_user, password="wrong")
        assert response.status_code == 400
        assert response.json()["type"] == "mailbox_auth_failed"
        assert client.get("/api/v1/mailboxes", headers=member.headers).json() == []

    def test_an_unreachable_server_is_502(self, client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
        import socket

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        response = connect_mailbox(client, member, imap_user, port=port)
        assert response.status_code == 502 and response.json()["type"] == "mailbox_unavailable"

    def test_plain_imap_to_a_remote_host_is_refused(self, client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
        response = connect_mailbox(client, member, imap_user, host="imap.example.com")
        assert response.status_code == 400 and response.json()["type"] == "plain_not_loopback"

    def test_without_a_mailbox_the_draft_says_so(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        response = draft(client, member, folder="INBOX", uid=1)
        assert response.status_code == 404 and response.json()["type"] == "no_mailbox"


class TestDraft:
    def test_by_uid_then_by_message_id_without_setting_seen(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<q1@example.co.jp>"))
        connect_mailbox(client, member, imap_user)
        by_uid = draft(client, member, folder="INBOX", uid=uid)
        assert by_uid.status_code == 200, by_uid.text
        body = by_uid.json()
        assert body["values"]["email"] == "taro.yamada@example.co.jp"
        assert body["lead"]["email"]["source"] == "header"
        assert body["message"]["uidvalidity"] and body["message"]["message_id"] == "<q1@example.co.jp>"
        assert body["captured"] is None and body["existing"] == []
        by_mid = draft(client, member, message_id="<q1@example.co.jp>").json()
        assert by_mid["message"]["uid"] == uid
        with dovecot.imap(imap_user.name) as imap:
            imap.select_folder("INBOX", readonly=True)
            assert b"\\Seen" not in imap.get_flags([uid])[uid]

    def test_captured_and_existing_after_a_save(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<q2@example.co.jp>"))
        other = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<q3@example.co.jp>"))
        connect_mailbox(client, member, imap_user)
        body = draft(client, member, folder="INBOX", uid=uid).json()
        saved = client.post("/api/v1/leads", json={**body["values"], "message": body["message"]}, headers=member.headers)
        assert saved.status_code == 201, saved.text
        again = draft(client, member, folder="INBOX", uid=uid).json()
        assert again["captured"]["id"] == saved.json()["lead"]["id"]
        next_mail = draft(client, member, folder="INBOX", uid=other).json()
        assert next_mail["captured"] is None
        assert [e["id"] for e in next_mail["existing"]] == [saved.json()["lead"]["id"]]

    def test_a_stale_uidvalidity_or_missing_uid_is_404(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        connect_mailbox(client, member, imap_user)
        real = draft(client, member, folder="INBOX", uid=uid).json()["message"]["uidvalidity"]
        stale = draft(client, member, folder="INBOX", uid=uid, uidvalidity=real + 1)
        assert stale.status_code == 404 and stale.json()["type"] == "uidvalidity_changed"
        missing = draft(client, member, folder="INBOX", uid=uid + 100)
        assert missing.status_code == 404 and missing.json()["type"] == "message_not_found"
        no_folder = draft(client, member, folder="Nope", uid=1)
        assert no_folder.status_code == 404 and no_folder.json()["type"] == "folder_not_found"
        assert draft(client, member, folder="INBOX", uid=0).status_code == 422

    def test_a_20_mb_attachment_is_never_downloaded(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        small = dovecot.append(imap_user.name, "INBOX", business_mail())
        big = dovecot.append(imap_user.name, "INBOX", business_mail(attachment_bytes=20 * 2**20))
        connect_mailbox(client, member, imap_user)
        small_draft = draft(client, member, folder="INBOX", uid=small).json()
        big_draft = draft(client, member, folder="INBOX", uid=big).json()
        assert big_draft["values"] == small_draft["values"]
        assert big_draft["bytes_fetched"] < 2 * small_draft["bytes_fetched"] + 1024

    def test_one_login_serves_many_drafts(self, client: TestClient, member, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        connect_mailbox(client, member, imap_user)
        for _ in range(10):
            assert draft(client, member, folder="INBOX", uid=uid).status_code == 200
        assert len(runtime.pool) == 1
        box = next(iter(runtime.pool._boxes.values()))
        assert box.connects == 1


class TestRaw:
    def test_the_raw_message_gives_the_same_draft(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        raw = business_mail(message_id="<raw@example.co.jp>")
        response = client.post("/api/v1/messages/draft/raw", content=raw, headers={**member.headers, "Content-Type": "message/rfc822"})
        assert response.status_code == 200, response.text
        assert response.json()["values"]["email"] == "taro.yamada@example.co.jp"
        assert response.json()["message"]["message_id"] == "<raw@example.co.jp>"

    def test_something_else_is_a_clear_400(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/messages/draft/raw", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, headers={**member.headers, "Content-Type": "message/rfc822"})
        assert response.status_code == 400 and response.json()["type"] == "not_a_message"
