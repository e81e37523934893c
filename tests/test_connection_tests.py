"""The mailbox connect/test endpoint is no port scanner and no way to hold worker threads:
private targets are refused unless allowed, a silent host fails fast, and an organisation
runs only a few tests at once."""

from __future__ import annotations

import socket
import time

import pytest
from fastapi.testclient import TestClient

from crm.domain.errors import InvalidInput, RateLimited
from tests.factories import connect_mailbox
from widget_api.connection_tests import ConnectionTests, check_target


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "::1", "127.0.0.1", "localhost", "192.168.1.1", "224.0.0.1", "0.0.0.0", "::ffff:10.0.0.1", "fe80::1"])
def test_private_targets_are_refused(host: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_target(host, 993)
    assert raised.value.code == "private_address"


def test_a_public_address_passes() -> None:
    check_target("93.184.216.34", 993)


def test_the_api_refuses_a_private_host_unless_allowed(client: TestClient, member, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.connection_tests.allow_private = False
    for host in ("10.0.0.1", "169.254.169.254", "::1"):
        response = connect_mailbox(client, member, imap_user, host=host, security="ssl")
        assert response.status_code == 400, response.text
        assert set(response.json()) >= {"type", "detail"} and response.json()["type"] == "private_address"
    runtime.connection_tests.allow_private = True
    assert connect_mailbox(client, member, imap_user).status_code == 201


def test_a_host_that_never_answers_fails_within_seconds(client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        response = connect_mailbox(client, member, imap_user, port=silent.getsockname()[1])
        elapsed = time.monotonic() - started
    assert response.status_code == 502 and response.json()["type"] == "mailbox_unavailable"
    assert elapsed < 8, elapsed  # the connect timeout (5 s), not the 20 s read timeout


def test_at_most_n_tests_per_organisation_at_once() -> None:
    tests = ConnectionTests(2, allow_private=True)
    with tests.slot(1, "127.0.0.1", 993), tests.slot(1, "127.0.0.1", 993):
        with pytest.raises(RateLimited) as raised, tests.slot(1, "127.0.0.1", 993):
            pass
        assert raised.value.retry_after >= 1
        with tests.slot(2, "127.0.0.1", 993):  # another organisation is not held up
            pass
    with tests.slot(1, "127.0.0.1", 993):  # the slots were given back
        pass


class TestResolvedOnce:
    """The IMAP connection goes to the addresses checked at connect time (mail_adapter.addresses),
    never to the name resolved again: a DNS answer that changes between the check and the
    connection (rebinding) cannot lead into the local network."""

    @staticmethod
    def box(host: str, port: int, user, *, security: str = "plain", ca_file: str | None = None, allow_private: bool):  # type: ignore[no-untyped-def]
        from mail_adapter.mailbox import Mailbox, MailboxSettings

        return Mailbox(MailboxSettings(host, port, security, user.name, user.password, ca_file=ca_file, timeout=5, allow_private=allow_private))

    def test_a_name_that_resolves_to_loopback_is_refused_unless_allowed(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(InvalidInput) as raised:
            self.box("localhost", dovecot.port, imap_user, allow_private=False).check()
        assert raised.value.code == "private_address"
        assert "INBOX" in self.box("localhost", dovecot.port, imap_user, allow_private=True).check()

    def test_a_name_rebound_to_loopback_after_the_check_is_refused(self, dovecot, imap_user, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
        calls = []

        def rebinding(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        check_target("mail.rebind.test", dovecot.tls_port)  # the first answer: public
        with pytest.raises(InvalidInput) as raised:
            self.box("mail.rebind.test", dovecot.tls_port, imap_user, security="ssl", ca_file=dovecot.ca_file, allow_private=False).check()
        assert raised.value.code == "private_address" and calls == ["mail.rebind.test"] * 2  # one resolution per connect

    def test_tls_verifies_the_name_not_the_address_connected_to(self, dovecot, imap_user, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.errors import MailboxUnavailable

        real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host == "mail.other.test" else host, *a, **k))
        # connected to 127.0.0.1, whose certificate names localhost and 127.0.0.1 only
        with pytest.raises(MailboxUnavailable):
            self.box("mail.other.test", dovecot.tls_port, imap_user, security="ssl", ca_file=dovecot.ca_file, allow_private=True).check()
        assert "INBOX" in self.box("localhost", dovecot.tls_port, imap_user, security="ssl", ca_file=dovecot.ca_file, allow_private=True).check()
        assert "INBOX" in self.box("localhost", dovecot.port, imap_user, security="starttls", ca_file=dovecot.ca_file, allow_private=True).check()
