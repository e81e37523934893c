"""Mail appended to Junk from a whitelisted sender → moved to the inbox: the latency with
IMAP IDLE (widget_api.idle_watch, polling loop at 300 s so that only IDLE can do it) beside
the polling loop alone (every 5 s; the latency of polling grows with its interval: about
half of it on average, plus the scan), in the same run, on a loopback Dovecot and SQLite.
Dovecot itself holds a change back ~0.5 s before telling IDLE clients (it batches them),
which is most of the IDLE figure.

    .venv/bin/python bench/idle_latency.py [--trials 10] [--poll 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from crm.store.db import migrate  # noqa: E402
from mail_adapter.idle import JUNK, FolderWatcher  # noqa: E402
from mail_adapter.mailbox import MailboxSettings  # noqa: E402
from tests.factories import connect_mailbox, make_org, make_user  # noqa: E402
from tests.servers.dovecot import Dovecot, ImapUser  # noqa: E402
from widget_api import idle_watch, metrics  # noqa: E402
from widget_api.cli.spam import worker_loop  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.main import create_app  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402

MX = "mx.bench.example"


def mail(mid: str) -> bytes:
    return (
        f"Authentication-Results: {MX}; dmarc=pass header.from=customer.co.jp\r\n"
        f"From: buyer@customer.co.jp\r\nTo: rep@acme.example\r\nSubject: order\r\nMessage-ID: {mid}\r\n\r\nPlease ship.\r\n"
    ).encode()


def rescued_after(dovecot: Dovecot, user: ImapUser, mid: str, timeout: float) -> float:
    """APPEND to Junk, then seconds until the message is in the inbox (watched by a client of its own)."""
    watcher = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=20)
    watcher.login(user.name, user.password)
    watcher.select_folder("INBOX", readonly=True)
    try:
        with dovecot.imap(user.name) as c:
            start = time.perf_counter()
            c.append("Junk", mail(mid))
        while time.perf_counter() - start < timeout:
            watcher.noop()
            if watcher.search(["HEADER", "Message-ID", mid]):
                return time.perf_counter() - start
            time.sleep(0.01)
        raise RuntimeError(f"{mid} not rescued within {timeout} s")
    finally:
        watcher.logout()


def setup(dovecot: Dovecot, directory: Path) -> tuple[Runtime, ImapUser]:
    url = f"sqlite:///{directory / 'bench.db'}"
    migrate(url)
    runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=directory, allow_private_hosts=True))
    org = make_org(runtime, "Bench")
    member = make_user(runtime, org, "rep@acme.example")
    user = dovecot.add_user()
    with TestClient(create_app(runtime.settings, runtime)) as client:
        assert connect_mailbox(client, member, user, trusted_authserv_ids=[MX]).status_code == 201
        assert client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers).status_code == 201
    return runtime, user


def measure(label: str, dovecot: Dovecot, trials: int, poll: float, start_idle: bool, ready: Callable[[], bool]) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        runtime, user = setup(dovecot, Path(d))
        stop = threading.Event()
        loop = threading.Thread(target=worker_loop, args=(runtime, poll, stop), daemon=True)
        loop.start()
        watch = idle_watch.start(runtime, stop, slice_seconds=0.5) if start_idle else None
        deadline = time.monotonic() + 15
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        rng = random.Random(1)
        figures = []
        try:
            for i in range(trials):
                time.sleep(rng.uniform(0.2, max(1.0, min(poll, 30.0))))  # arrivals at random phases of the poll
                figures.append(rescued_after(dovecot, user, f"<{label}{i}@customer.co.jp>", poll + 30))
        finally:
            stop.set()
            loop.join(30)
            if watch is not None:
                watch.join(30)
            runtime.close()
    return figures


def notified_after(dovecot: Dovecot, trials: int) -> list[float]:
    """The server's part: APPEND → the IDLE watcher told of the change (no scan)."""
    user = dovecot.add_user()
    watcher = FolderWatcher(MailboxSettings("127.0.0.1", dovecot.port, "plain", user.name, user.password), JUNK)
    assert watcher.open()
    figures = []
    try:
        watcher.wait(0.2)  # in IDLE
        for i in range(trials):
            with dovecot.imap(user.name) as c:
                start = time.perf_counter()
                c.append("Junk", mail(f"<n{i}@customer.co.jp>"))
            while not watcher.wait(5):
                pass
            figures.append(time.perf_counter() - start)
    finally:
        watcher.close()
    return figures


def show(label: str, figures: list[float]) -> None:
    ordered = sorted(figures)
    p50 = statistics.median(ordered)
    print(f"{label:30} n={len(ordered):3}  p50 {p50 * 1000:8.0f} ms  mean {statistics.fmean(ordered) * 1000:8.0f} ms  max {ordered[-1] * 1000:8.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--poll", type=float, default=5.0, help="the polling loop's interval for the naive run (s)")
    args = parser.parse_args()
    dovecot = Dovecot().start()
    try:
        notified = notified_after(dovecot, args.trials)
        show("IDLE notification only", notified)
        base = metrics.IDLE_CONNECTIONS._value.get()
        idle = measure("idle", dovecot, args.trials, 300.0, True, lambda: metrics.IDLE_CONNECTIONS._value.get() - base >= 2)
        polled = measure("poll", dovecot, args.trials, args.poll, False, lambda: True)
    finally:
        dovecot.stop()
    show("IDLE (poll every 300 s)", idle)
    show(f"polling only (every {args.poll:g} s)", polled)
    print(f"ratio of medians: polling / IDLE = {statistics.median(polled) / statistics.median(idle):.1f}x")
    print(f"polling at the worker's default 60 s would average ~{30 + statistics.fmean(idle):.0f} s, `serve`'s 300 s ~{150 + statistics.fmean(idle):.0f} s")


if __name__ == "__main__":
    main()
