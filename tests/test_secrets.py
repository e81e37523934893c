"""Mailbox secrets: encrypted at rest, never returned, never logged."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from crm.domain.errors import InvalidInput
from crm.services.secrets import SecretBox
from mail_adapter.mailbox import MailboxSettings


class TestSecretBox:
    def test_round_trip_and_rotation(self) -> None:
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        token = SecretBox([old]).encrypt("pässword")
        assert b"p\xc3\xa4ssword" not in token
        assert SecretBox([new, old]).decrypt(token) == "pässword"  # old key still reads after rotation
        with pytest.raises(InvalidInput):
            SecretBox([new]).decrypt(token)

    def test_a_bad_key_is_a_clear_error(self) -> None:
        with pytest.raises(InvalidInput):
            SecretBox(["not a key"])
        with pytest.raises(InvalidInput):
            SecretBox([])
        assert "key" not in repr(SecretBox([Fernet.generate_key().decode()])).lower().replace("secretbox", "")

    def test_settings_repr_hides_the_secret(self) -> None:
        assert "hunter2" not in repr(MailboxSettings("127.0.0.1", 143, "plain", "u", "hunter2"))

    def test_plain_imap_only_to_loopback(self) -> None:
        with pytest.raises(InvalidInput):
            MailboxSettings("imap.example.com", 143, "plain", "u", "p")
        MailboxSettings("::1", 143, "plain", "u", "p")


class TestAtRest:
    def test_stored_encrypted_never_returned_never_logged(self, client, member, imap_user, runtime, caplog) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import connect_mailbox

        caplog.set_level(logging.DEBUG)
        response = connect_mailbox(client, member, imap_user)
        assert response.status_code == 201, response.text
        assert imap_user.password not in response.text
        assert imap_user.password not in client.get("/api/v1/mailboxes", headers=member.headers).text
        with runtime.engine.connect() as conn:
            stored = conn.execute(text("SELECT secret_encrypted FROM mailbox_accounts")).scalar_one()
        assert imap_user.password.encode() not in bytes(stored)
        assert runtime.secrets.decrypt(bytes(stored)) == imap_user.password
        assert imap_user.password not in caplog.text
