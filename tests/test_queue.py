"""The job queue on PostgreSQL (widget_api.queue), proven with real processes: 2 API
processes (`serve --workers 2`) and 3 `mailwidget worker` processes on one PostgreSQL, a
real Dovecot. Mail arriving in Junk from whitelisted senders is rescued exactly once
(counted by Message-ID in INBOX and Junk) while a worker is SIGKILLed mid-scan (its jobs are
retried by the others) and PostgreSQL restarts (the workers reconnect, the jobs cut off are
retried); SIGTERM in the middle of scans then stops every worker with exit 0, the running
scans finished and none left running.

These tests need PostgreSQL (the `postgres_cluster` fixture skips without its binaries)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from alembic import command

from crm.store.db import alembic_config, migrate
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.postgres import PostgresCluster
from tests.servers.queue_stack import Stack, conninfo
from tests.test_spam import MX, mail

MAILBOXES = 5
MESSAGES = 1000
WHITELISTED = "buyer@customer.co.jp"


def _append_many(dovecot: Dovecot, user: ImapUser, mids: list[str]) -> None:
    with dovecot.imap(user.name) as c:
        for mid in mids:
            c.append("Junk", mail(mid=mid))


def _mids(dovecot: Dovecot, user: ImapUser, folder: str) -> list[str]:
    with dovecot.imap(user.name) as c:
        c.select_folder(folder, readonly=True)
        uids = c.search(["NOT", "DELETED"])
        if not uids:
            return []
        data = c.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        # A message a worker moved away between SEARCH and FETCH comes back as NIL: it is gone.
        headers = (v.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]") for v in data.values())
        return [h.decode().split(":", 1)[1].strip() for h in headers if h]


def test_mail_is_rescued_exactly_once_by_three_workers_through_a_kill_and_a_database_restart(stack: Stack, postgres_cluster: PostgresCluster, dovecot: Dovecot) -> None:
    started = time.monotonic()
    phases: list[tuple[str, float]] = []

    def phase(name: str) -> None:
        phases.append((name, round(time.monotonic() - started, 1)))

    stack.start_api()
    phase("api up")
    users = [dovecot.add_user() for _ in range(MAILBOXES)]
    with stack.http() as c:
        for u in users:
            body = {"host": u.host, "port": u.port, "security": "plain", "username": u.name, "password": u.password, "trusted_authserv_ids": [MX]}
            assert c.post("/api/v1/mailboxes", json=body).status_code == 201
        assert c.post("/api/v1/spam/whitelist", json={"value": WHITELISTED}).status_code in (200, 201)
    workers = [stack.start_worker() for _ in range(3)]
    ids = [stack.worker_id(w) for w in workers]
    phase("workers up")

    per_box = MESSAGES // MAILBOXES
    mids = {u.name: [f"<q{i}.{n}@customer.co.jp>" for n in range(per_box)] for i, u in enumerate(users)}
    waves = 4
    step = per_box // waves

    def wave(k: int) -> None:
        threads = [threading.Thread(target=_append_many, args=(dovecot, u, mids[u.name][k * step : (k + 1) * step])) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # 1. mail arrives; a worker is SIGKILLed while it runs scan jobs
    wave(0)
    wave(1)
    victim, victim_id = workers[0], ids[0]
    deadline = time.monotonic() + 20
    running: list[int] = []
    while not running and time.monotonic() < deadline:
        running = [r[0] for r in stack.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = %s AND task_name = 'scan_mailbox'", victim_id)]
        if not running:
            time.sleep(0.01)
    assert running, "the worker to kill never ran a scan"
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    phase("killed")

    # 2. the others retry its jobs (its heartbeat stopped), mail keeps arriving
    wave(2)
    survivors = [w for w in workers if w is not victim]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(any(f"job {j} (scan_mailbox) of a stopped worker put back" in line for w in survivors for line in stack.logs[w.pid]) for j in running):
        time.sleep(0.1)
    retried_log = "".join(line for w in survivors for line in stack.logs[w.pid])
    for job in running:
        assert f"job {job} (scan_mailbox) of a stopped worker put back" in retried_log, retried_log[-3000:]

    phase("retried")
    # 3. PostgreSQL restarts mid-run: /ready says 503 meanwhile (never a 500), workers reconnect
    postgres_cluster.halt()
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.port}", timeout=10) as c:
        assert c.get("/api/v1/ready").status_code == 503
    wave(3)  # arrives while the database is away
    time.sleep(1)
    postgres_cluster.resume()
    phase("resumed")

    # 4. everything is rescued, each message once
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(not _mids(dovecot, u, "Junk") for u in users):
            break
        time.sleep(0.5)
    for u in users:
        inbox, junk = Counter(_mids(dovecot, u, "INBOX")), _mids(dovecot, u, "Junk")
        assert junk == [], f"{u.name}: {len(junk)} left in Junk"
        assert sorted(inbox) == sorted(mids[u.name]) and set(inbox.values()) == {1}, f"{u.name}: {[m for m, n in inbox.items() if n > 1][:5]} twice"

    phase("all rescued")
    # /ready on PostgreSQL shows the queue: its depth, the oldest job's wait, live heartbeats
    with stack.http() as c:
        ready = c.get("/api/v1/ready")
        assert ready.status_code == 200, ready.text
        queue = ready.json()["checks"]["queue"]
        assert queue["ok"] is True and queue["last_heartbeat_age_s"] <= 3 and queue["workers"] >= 2
        # attempts cut off by the restart stay recorded as failed (their next attempt was deferred)
        assert queue["failed"] == len(stack.sql("SELECT 1 FROM procrastinate_jobs WHERE status = 'failed' AND task_name = 'scan_mailbox'"))
        assert "mailwidget_queue_jobs" in c.get("/metrics").text

    # 5. SIGTERM mid-scan: each worker finishes what it runs, takes nothing new, exits 0
    _append_many(dovecot, users[0], [f"<late{n}@customer.co.jp>" for n in range(100)])
    deadline = time.monotonic() + 20
    busy: list[tuple[int]] = []
    while not busy and time.monotonic() < deadline:
        busy = stack.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND task_name = 'scan_mailbox'")  # type: ignore[assignment]
        if not busy:
            time.sleep(0.005)
    assert busy, "no scan ran to stop in the middle of"
    for w in survivors:
        w.send_signal(signal.SIGTERM)
    for w in survivors:
        assert w.wait(20) == 0, "".join(stack.logs[w.pid])[-3000:]
    # the scans running at SIGTERM ended (succeeded jobs are deleted), none was left doing
    assert stack.sql("SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(%s) AND status <> 'failed'", [j for (j,) in busy]) == []
    assert stack.sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = ANY(%s)", ids[1:]) == [(0,)]
    assert stack.sql("SELECT count(*) FROM procrastinate_workers WHERE id = ANY(%s)", ids[1:]) == [(0,)]  # unregistered
    phase("stopped")
    if os.environ.get("QUEUE_TEST_LOGS"):
        Path(os.environ["QUEUE_TEST_LOGS"]).write_text("\n=====\n".join("".join(stack.logs[w.pid]) for w in workers))
    print(f"queue proof: {MESSAGES} messages, {len(running)} job(s) of the killed worker retried, {queue['failed']} attempt(s) failed and tried again; {phases}")


def test_the_queue_schema_migrates_down_and_up(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.create_database()
    migrate(url)
    cfg = alembic_config(url)
    with psycopg.connect(conninfo(url)) as conn:
        assert conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,)
    command.downgrade(cfg, "queue@-1")  # one step: queue_0001 alone (its base would take 0001_core along)
    with psycopg.connect(conninfo(url)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procrastinate%'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%'").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('leads') IS NOT NULL").fetchone() == (True,)  # the other branches untouched
    migrate(url)
    with psycopg.connect(conninfo(url)) as conn:
        assert conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,)


def test_an_upload_is_imported_by_a_queue_worker_not_by_the_api_process(postgres_cluster: PostgresCluster, tmp_path: Path) -> None:
    """With the queue on, the upload defers a `run_imports` job (no runner thread starts in
    the API's runtime) and a worker of the queue imports it, batch by batch as before."""
    from cryptography.fernet import Fernet
    from fastapi.testclient import TestClient

    from tests.factories import import_csv, make_org, make_user
    from widget_api import queue
    from widget_api.config import Settings
    from widget_api.main import create_app
    from widget_api.runtime import Runtime

    url = postgres_cluster.create_database()
    migrate(url)
    settings = Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp_path, job_queue=True, queue_heartbeat=1, import_in_subprocess=False)
    api, worker_runtime = Runtime.build(settings), Runtime.build(settings)
    stop = threading.Event()
    thread = queue.start_in_thread(worker_runtime, stop, scan_interval=60, send_interval=60)
    try:
        admin = make_user(api, make_org(api, "Queue Co"), "admin@queue.example", role="admin")
        with TestClient(create_app(settings, api)) as client:
            rows = b"email,name\n" + b"".join(f"p{i}@buyer{i}.example,P {i}\n".encode() for i in range(250))
            job = import_csv(client, admin, rows, {"mode": "row_by_row"}, timeout=60)
        assert job["status"] == "done", job
        assert not any(t.is_alive() for t in api.import_worker._running)  # the API process ran nothing
        with psycopg.connect(conninfo(url)) as conn:
            assert conn.execute("SELECT count(*) FROM leads").fetchone() == (250,)
            # The job is marked done just after the import it ran: wait for that, not a race.
            # A pass scheduled for later (a lease's end) is not a job left behind.
            left = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'run_imports' AND (status IN ('doing', 'failed') OR (status = 'todo' AND coalesce(scheduled_at, now()) <= now()))"
            deadline = time.monotonic() + 15
            while conn.execute(left).fetchone() != (0,) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert conn.execute(left).fetchone() == (0,)
    finally:
        stop.set()
        thread.join(30)
        api.close()
        worker_runtime.close()
    assert not thread.is_alive()
