"""The test servers are real: each does what the other tests rely on."""

from __future__ import annotations

import imapclient
import pytest
from sqlalchemy import create_engine, text


class TestDovecot:
    def test_append_and_fetch(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n")
        with dovecot.imap(imap_user.name) as c:
            c.select_folder("INBOX")
            assert c.fetch([uid], ["RFC822"])[uid][b"RFC822"].endswith(b"body\r\n")
            assert "Junk" in [name for flags, _d, name in c.list_folders() if b"\\Junk" in flags]

    def test_variants_lack_their_capability(self, dovecot_nomove, dovecot_nouidplus, dovecot_nospecialuse) -> None:  # type: ignore[no-untyped-def]
        for server, absent in ((dovecot_nomove, b"MOVE"), (dovecot_nouidplus, b"UIDPLUS")):
            user = server.add_user()
            with server.imap(user.name) as c:
                assert absent not in c.capabilities()
        user = dovecot_nospecialuse.add_user()
        with dovecot_nospecialuse.imap(user.name) as c:
            folders = c.list_folders()
            assert "迷惑メール" in [name for _f, _d, name in folders]
            assert not any(b"\\Junk" in flags for flags, _d, _n in folders)

    def test_tls_listener(self, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        import ssl

        c = imapclient.IMAPClient(dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=ssl.create_default_context(cafile=dovecot.ca_file))
        c.login(imap_user.name, imap_user.password)
        c.logout()


class TestProxy:
    def test_cuts_on_the_chosen_command_once(self, dovecot, imap_user, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"SELECT", when="before")
        c = imapclient.IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=5)
        c.login(imap_user.name, imap_user.password)
        with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
            c.select_folder("INBOX")
        c2 = imapclient.IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=5)
        c2.login(imap_user.name, imap_user.password)
        assert c2.select_folder("INBOX")[b"EXISTS"] == 0
        c2.logout()
        assert proxy.connections == 2 and proxy.cuts == 1


@pytest.mark.db
def test_postgres_cluster(postgres_cluster) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(postgres_cluster.create_database("servers_check"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
