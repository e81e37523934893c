"""Several processes on one database: the mailbox-scan lease (two workers never scan one
mailbox at once) and `serve --workers N` (several API processes behind one port)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.factories import connect_mailbox
from tests.servers.net import free_port, wait_for_port
from tests.test_spam import MX, folder_mids, mail
from widget_api.cli.spam import scan_all
from widget_api.mailbox_scan import lease

ROOT = Path(__file__).resolve().parents[1]


class TestMailboxLease:
    def test_a_mailbox_whose_lease_another_worker_holds_is_skipped_then_scanned(self, runtime, client, member, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        account_id = connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX]).json()["id"]
        client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
        dovecot.append(imap_user.name, "Junk", mail(mid="<leased@customer.co.jp>"))
        with lease(runtime, account_id, "test") as held:  # as another worker's scan would
            assert held
            out = io.StringIO()
            scan_all(runtime, out=out)
            assert "skipped (being scanned elsewhere)" in out.getvalue()
            assert folder_mids(dovecot, imap_user, "INBOX") == []
        out = io.StringIO()
        scan_all(runtime, out=out)
        assert "moved 1" in out.getvalue() and folder_mids(dovecot, imap_user, "INBOX") == ["<leased@customer.co.jp>"]

    def test_the_lease_of_a_worker_killed_mid_scan_is_taken_over_once_expired(self, runtime, client, member, imap_user) -> None:  # type: ignore[no-untyped-def]
        account_id = connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX]).json()["id"]
        url = runtime.engine.url.render_as_string(hide_password=False)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import time; from sqlalchemy import create_engine; from sqlalchemy.orm import Session; from crm.store import leases\n"
             f"e=create_engine({url!r})\nwith Session(e) as s, s.begin():\n    ok = leases.take(s, {account_id}, 'killed-worker', 3)\n"
             "print(ok, flush=True); time.sleep(60)"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
            holder.kill()  # SIGKILL mid-scan: the lease stays until it expires, never for good
            holder.wait(10)
            with lease(runtime, account_id, "test") as mine:
                assert not mine
            deadline = time.monotonic() + 15
            while True:
                with lease(runtime, account_id, "test") as mine:
                    if mine or time.monotonic() > deadline:
                        break
                time.sleep(0.2)
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
