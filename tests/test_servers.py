"""The test servers are real and do what the other tests rely on: Dovecot and its variants,
the fault proxy, PostgreSQL, and no process outliving the run."""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from sqlalchemy import create_engine, text

from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.net import scratch_dir
from tests.servers.postgres import ExternalPostgres, PostgresCluster, pg_bin
from tests.servers.proxy import CapabilityFilter, FaultProxy, When

ROOT = Path(__file__).resolve().parents[1]
MAIL = b"From: Taro <taro@example.co.jp>\r\nSubject: hello\r\nMessage-ID: <m@example.co.jp>\r\n\r\nbody\r\n"
# A body that looks like protocol: a proxy that ignored literals would act on it.
TRICKY = (
    b"Subject: tricky\r\n\r\na1 UID MOVE 1 Junk\r\n* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n* OK [COPYUID 1 1 1] x\r\n"
)
ProxyFactory = Callable[[Dovecot], FaultProxy]
DROPPED = (IMAPClientAbortError, imaplib.IMAP4.abort, OSError)


def raw_client(port: int) -> IMAPClient:
    return IMAPClient("127.0.0.1", port=port, ssl=False, timeout=5)


def tagged(c: IMAPClient, *words: str) -> bytes:
    """Send a raw command; the text of the tagged OK (imaplib drops its response code)."""
    typ, data = c._imap._simple_command(*words)
    assert typ == "OK", data
    return bytes(data[-1])


def live_processes(group: int) -> list[int]:
    """Processes of a process group that are not yet zombies."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def wait_gone(group: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := live_processes(group)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


class TestDovecot:
    def test_login_append_fetch(self, dovecot: Dovecot, imap_user: ImapUser) -> None:
        uid = dovecot.append(imap_user.name, "INBOX", MAIL, flags=(b"\\Seen",))
        with dovecot.imap(imap_user.name) as c:
            c.select_folder("INBOX", readonly=True)
            data = c.fetch([uid], ["RFC822", "FLAGS"])[uid]
        assert data[b"RFC822"] == MAIL and b"\\Seen" in data[b"FLAGS"]

    def test_special_use_folders_exist_and_are_subscribed(self, dovecot: Dovecot, imap_user: ImapUser) -> None:
        with dovecot.imap(imap_user.name) as c:
            flags = {name: set(f) for f, _d, name in c.list_folders()}
            subscribed = {name for _f, _d, name in c.list_sub_folders()}
        for name, flag in (("Junk", b"\\Junk"), ("Sent", b"\\Sent"), ("Trash", b"\\Trash"), ("Drafts", b"\\Drafts")):
            assert flag in flags[name] and name in subscribed

    def test_users_are_separate_and_passwords_checked(self, dovecot: Dovecot) -> None:
        alice, bob = dovecot.add_user("alice_" + os.urandom(3).hex(), "pw-a"), dovecot.add_user()
        dovecot.append(alice.name, "INBOX", MAIL)
        with dovecot.imap(bob.name) as c:
            assert c.select_folder("INBOX")[b"EXISTS"] == 0
        c = raw_client(dovecot.port)
        with pytest.raises(LoginError):
            c.login(alice.name, "wrong")
        c.shutdown()
        stored = {
            u.name: [f for sub in ("new", "cur") for f in (dovecot.maildir(u.name) / sub).glob("*")]
            for u in (alice, bob)
        }
        assert (len(stored[alice.name]), len(stored[bob.name])) == (1, 0)

    def test_tls_listener_and_starttls_verify_against_the_ca(self, dovecot: Dovecot, imap_user: ImapUser) -> None:
        with IMAPClient(
            dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=dovecot.ssl_context(), timeout=5
        ) as c:
            c.login(imap_user.name, imap_user.password)
            assert c.select_folder("INBOX")[b"EXISTS"] == 0
        c = raw_client(dovecot.port)
        c.starttls(dovecot.ssl_context())
        c.login(imap_user.name, imap_user.password)
        c.logout()
        with pytest.raises(ssl.SSLCertVerificationError):
            IMAPClient(
                dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=5
            )

    def test_the_log_is_in_the_temp_dir(self, dovecot: Dovecot, imap_user: ImapUser) -> None:
        with dovecot.imap(imap_user.name):
            pass
        deadline = time.monotonic() + 5
        while f"user=<{imap_user.name}>" not in dovecot.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"Login: user=<{imap_user.name}>" in dovecot.log()


class TestVariants:
    def test_without_move_it_is_not_advertised_and_refused(self, dovecot_nomove: Dovecot) -> None:
        user = dovecot_nomove.add_user()
        uid = dovecot_nomove.append(user.name, "INBOX", MAIL)
        with dovecot_nomove.imap(user.name) as c:
            caps = c.capabilities()
            assert b"MOVE" not in caps and b"UIDPLUS" in caps
            c.select_folder("INBOX")
            with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
                tagged(c, "UID", "MOVE", str(uid), "Junk")
            assert c.search(["ALL"]) == [uid]  # still there, and the session still works
            assert b"COPYUID" in tagged(c, "UID", "COPY", str(uid), "Junk")

    def test_without_uidplus_no_uid_expunge_no_uid_codes(self, dovecot_nouidplus: Dovecot) -> None:
        user = dovecot_nouidplus.add_user()
        uid = dovecot_nouidplus.append(user.name, "INBOX", MAIL)
        with dovecot_nouidplus.imap(user.name) as c:
            caps = c.capabilities()
            assert b"UIDPLUS" not in caps and b"MOVE" not in caps
            assert b"APPENDUID" not in c.append("INBOX", MAIL)
            c.select_folder("INBOX")
            c.set_flags([uid], [b"\\Deleted"])
            with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
                tagged(c, "UID", "EXPUNGE", str(uid))
            assert uid in c.search(["ALL"])
            assert tagged(c, "UID", "COPY", str(uid), "Junk").startswith(b"Copy completed")

    def test_without_special_use_the_junk_folder_has_another_name(self, dovecot_nospecialuse: Dovecot) -> None:
        user = dovecot_nospecialuse.add_user()
        with dovecot_nospecialuse.imap(user.name) as c:
            folders = c.list_folders()
        assert "迷惑メール" in [name for _f, _d, name in folders]
        assert not any(b"\\Junk" in flags for flags, _d, _n in folders)

    def test_the_filter_speaks_tls_and_starttls(self, dovecot_nomove: Dovecot) -> None:
        user = dovecot_nomove.add_user()
        with dovecot_nomove.imap(user.name, tls=True) as c:
            assert b"MOVE" not in c.capabilities()
        c = raw_client(dovecot_nomove.port)
        c.starttls(dovecot_nomove.ssl_context())
        c.login(user.name, user.password)
        assert b"MOVE" not in c.capabilities()
        c.logout()

    def test_literals_pass_the_filter_untouched(self, dovecot_nouidplus: Dovecot) -> None:
        user = dovecot_nouidplus.add_user()
        uid = dovecot_nouidplus.append(user.name, "INBOX", TRICKY)
        with dovecot_nouidplus.imap(user.name) as c:
            c.select_folder("INBOX", readonly=True)
            assert c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == TRICKY


class TestFaultProxy:
    def test_cuts_on_the_chosen_command_once(
        self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory
    ) -> None:
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"SELECT", when="before")
        c = raw_client(proxy.port)
        c.login(imap_user.name, imap_user.password)
        with pytest.raises(DROPPED):
            c.select_folder("INBOX")
        with raw_client(proxy.port) as c2:
            c2.login(imap_user.name, imap_user.password)
            assert c2.select_folder("INBOX")[b"EXISTS"] == 0
        assert proxy.connections == 2 and proxy.cuts == 1

    @pytest.mark.parametrize(("when", "done_on_server"), [("before", False), ("after_reply", True)])
    def test_before_never_reaches_the_server_after_reply_did(
        self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory, when: When, done_on_server: bool
    ) -> None:
        uid = dovecot.append(imap_user.name, "INBOX", MAIL)
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"UID STORE", when=when)
        c = raw_client(proxy.port)
        c.login(imap_user.name, imap_user.password)
        c.select_folder("INBOX")
        with pytest.raises(DROPPED):
            c.add_flags([uid], [b"\\Flagged"])
        with dovecot.imap(imap_user.name) as direct:
            direct.select_folder("INBOX", readonly=True)
            assert (b"\\Flagged" in direct.get_flags([uid])[uid]) is done_on_server
        assert proxy.cuts == 1

    def test_after_forward_the_server_runs_the_command_unheard(
        self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory
    ) -> None:
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"CREATE", when="after_forward")
        c = raw_client(proxy.port)
        c.login(imap_user.name, imap_user.password)
        with pytest.raises(DROPPED):
            c.create_folder("Made")
        with dovecot.imap(imap_user.name) as direct:
            deadline = time.monotonic() + 5
            while not direct.folder_exists("Made") and time.monotonic() < deadline:
                time.sleep(0.02)
            assert direct.folder_exists("Made")

    def test_persistent_until_reset(self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory) -> None:
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"LOGIN", times=None)
        for _ in range(2):
            with pytest.raises((*DROPPED, LoginError)):
                raw_client(proxy.port).login(imap_user.name, imap_user.password)
        proxy.reset()
        with raw_client(proxy.port) as c:
            c.login(imap_user.name, imap_user.password)
        assert (proxy.cuts, proxy.connections) == (2, 3)

    def test_cut_after_bytes(self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory) -> None:
        proxy = fault_proxy(dovecot)
        proxy.cut_after_bytes(10)
        with pytest.raises((*DROPPED, LoginError)):
            raw_client(proxy.port).login(imap_user.name, imap_user.password)
        with raw_client(proxy.port) as c:
            c.login(imap_user.name, imap_user.password)
        assert proxy.cuts == 1

    def test_message_bodies_are_not_commands(
        self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory
    ) -> None:
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"UID MOVE", times=None)
        with raw_client(proxy.port) as c:
            c.login(imap_user.name, imap_user.password)
            c.append("INBOX", TRICKY)
            c.select_folder("INBOX", readonly=True)
            uids = c.search(["ALL"])
            assert [v[b"BODY[]"] for v in c.fetch(uids, ["BODY.PEEK[]"]).values()] == [TRICKY]
        assert proxy.cuts == 0

    def test_a_refused_literal_does_not_confuse_the_framing(
        self, dovecot: Dovecot, imap_user: ImapUser, fault_proxy: ProxyFactory
    ) -> None:
        """APPEND to a missing folder is answered NO before "+": no literal follows."""
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"^\S+ NOOP", times=None)
        with raw_client(proxy.port) as c:
            c.login(imap_user.name, imap_user.password)
            with pytest.raises(IMAPClientError):
                c.append("Nowhere", MAIL)
            with pytest.raises(DROPPED):
                c.noop()  # seen as a command again, so the rule fires
        assert proxy.cuts == 1


class TestLifecycle:
    def test_stop_leaves_no_process(self) -> None:
        server = Dovecot(remove_capabilities=("MOVE",)).start()
        group, directory = server.process.pid, server.dir  # type: ignore[union-attr]
        with server.imap(server.add_user().name):
            server.stop()
        assert live_processes(group) == [] and not directory.exists()

    @pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed")
    def test_a_halted_postgres_resumes_with_its_data_on_its_port(self) -> None:
        import psycopg

        with PostgresCluster() as pg:
            pg.create_database("kept")
            with psycopg.connect(pg.dsn("kept"), autocommit=True) as conn:
                conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
            port = pg.port
            pg.halt()
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(pg.dsn("kept"), connect_timeout=2)
            pg.resume()
            with psycopg.connect(pg.dsn("kept")) as conn:
                assert pg.port == port and conn.execute("SELECT n FROM t").fetchone() == (7,)

    def test_a_killed_test_run_takes_its_servers_along(self) -> None:
        with_pg = pg_bin() is not None
        script = (
            "import sys, time\n"
            "from tests.servers.dovecot import Dovecot\n"
            "from tests.servers.postgres import PostgresCluster\n"
            "d = Dovecot().start()\n"
            f"p = PostgresCluster().start() if {with_pg} else None\n"
            "print(d.process.pid, d.dir, p.process.pid if p else 0, p.dir if p else '', flush=True)\n"
            "time.sleep(120)\n"
        )
        child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline().split()  # type: ignore[union-attr]
        finally:
            os.kill(child.pid, signal.SIGKILL)  # no teardown runs
            child.wait()
            child.stdout.close()  # type: ignore[union-attr]
        groups = [int(line[0])] + ([int(line[2])] if with_pg else [])
        left = [Path(d) for d in line[1::2]]
        try:
            for group in groups:
                assert wait_gone(group) == []
            fresh = [scratch_dir(f"{d.name.rsplit('-', 1)[0]}-") for d in left]  # the next run sweeps the files
            assert not any(d.exists() for d in left)
            left += fresh
        finally:
            for directory in left:
                shutil.rmtree(directory, ignore_errors=True)

    def test_a_filter_answers_with_the_target_gone(self) -> None:
        with CapabilityFilter(1, ("MOVE",)) as gone, pytest.raises(DROPPED):  # nothing listens on port 1
            raw_client(gone.port)


class TestPostgres:
    def test_accepts_connections_on_loopback_only(self, postgres_cluster: PostgresCluster | ExternalPostgres) -> None:
        first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
        assert first != second
        engine = create_engine(first)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
                conn.execute(text("CREATE TABLE t (x int)"))
                conn.commit()
                if isinstance(postgres_cluster, PostgresCluster):
                    assert conn.execute(text("SHOW listen_addresses")).scalar() == "127.0.0.1"
                    assert conn.execute(text("SHOW fsync")).scalar() == "off"
        finally:
            engine.dispose()
        other = create_engine(second)
        try:
            with other.connect() as conn:  # a database of its own: the table is not there
                assert conn.execute(text("SELECT to_regclass('t')")).scalar() is None
        finally:
            other.dispose()
