"""Several processes on one database: the mailbox-scan lease (two workers never scan one
mailbox at once) and `serve --workers N` (several API processes behind one port)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from crm.store.leases import MAILBOX_SCAN, lease
from tests.factories import connect_mailbox
from tests.servers.net import free_port, wait_for_port
from tests.test_spam import MX, folder_mids, mail
from widget_api.cli.spam import scan_all

ROOT = Path(__file__).resolve().parents[1]


class TestMailboxLease:
    def test_a_mailbox_whose_lease_another_worker_holds_is_skipped_then_scanned(self, runtime, client, member, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        account_id = connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX]).json()["id"]
        client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
        dovecot.append(imap_user.name, "Junk", mail(mid="<leased@customer.co.jp>"))
        postgres = runtime.engine.dialect.name == "postgresql"
        with lease(runtime.engine, MAILBOX_SCAN, account_id) as held:
            assert held
            out = io.StringIO()
            scan_all(runtime, out=out)  # another connection: another worker, as PostgreSQL sees it
            if postgres:
                assert "skipped (another worker is scanning it)" in out.getvalue()
                assert folder_mids(dovecot, imap_user, "INBOX") == []
                with lease(runtime.engine, MAILBOX_SCAN, account_id) as second:
                    assert not second
        if not postgres:  # SQLite: one process, every lease granted
            assert folder_mids(dovecot, imap_user, "INBOX") == ["<leased@customer.co.jp>"]
            return
        out = io.StringIO()
        scan_all(runtime, out=out)
        assert "moved 1" in out.getvalue() and folder_mids(dovecot, imap_user, "INBOX") == ["<leased@customer.co.jp>"]

    def test_a_killed_holder_leaves_no_lease(self, runtime) -> None:  # type: ignore[no-untyped-def]
        if runtime.engine.dialect.name != "postgresql":
            pytest.skip("advisory locks are PostgreSQL's; SQLite grants every lease")
        url = runtime.engine.url.render_as_string(hide_password=False)
        holder = subprocess.Popen(
            [sys.executable, "-c", f"import sys,time; from sqlalchemy import create_engine; from crm.store.leases import lease\n"
             f"e=create_engine({url!r})\nwith lease(e, {MAILBOX_SCAN}, 42) as h:\n    print(h, flush=True); time.sleep(60)"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
            with lease(runtime.engine, MAILBOX_SCAN, 42) as mine:
                assert not mine
            holder.kill()  # SIGKILL mid-scan: PostgreSQL ends its session and its locks
            holder.wait(10)
            for _ in range(50):
                with lease(runtime.engine, MAILBOX_SCAN, 42) as mine:
                    if mine:
                        break
                import time

                time.sleep(0.1)
            assert mine
        finally:
            holder.kill()


def test_serve_with_two_workers_answers_from_two_processes(request, tmp_path, imap_user) -> None:  # type: ignore[no-untyped-def]
    """Two API processes on one port: the first-run token works on every connection, and a
    mailbox connected through one is tested through either (both decrypt its password with
    the key the parent created)."""
    if os.environ.get("MAILWIDGET_TEST_DB") == "postgres":
        database_url = request.getfixturevalue("postgres_cluster").create_database()
    else:
        database_url = f"sqlite:///{tmp_path / 'scaled.db'}"
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "MAILWIDGET_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("MAILWIDGET_SECRET_KEY", None)
    env.pop("MAILWIDGET_SECRET_KEY_FILE", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "widget_api.cli", "serve", "--port", str(port), "--workers", "2", "--no-scan"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        token = next(line.rsplit(" ", 1)[1].strip() for line in server.stdout if "Admin API token" in line)
        wait_for_port(port, what="serve --workers 2", timeout=60, alive=lambda: server.poll() is None)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        body = {"host": imap_user.host, "port": imap_user.port, "security": "plain", "username": imap_user.name, "password": imap_user.password}
        with httpx.Client(base_url=base) as c:
            mailbox = c.post("/api/v1/mailboxes", json=body, headers=headers)
            assert mailbox.status_code == 201, mailbox.text
        apis = psutil.Process(server.pid).children()
        assert len([p for p in apis if "multiprocessing" in " ".join(p.cmdline())]) >= 2
        for _ in range(8):
            with httpx.Client(base_url=base) as c:  # a new connection each time: either process may take it
                got = c.post(f"/api/v1/mailboxes/{mailbox.json()['id']}/test", headers=headers)
                assert got.status_code == 200, got.text
    finally:
        server.terminate()
        server.wait(20)
