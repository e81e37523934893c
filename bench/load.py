"""The widget's load on several API processes: 64 concurrent users doing the widget's mix
(draft 70 %, save 10 %, duplicate check 10 %, calendar events 10 %) for a bounded time,
against `mailwidget serve --workers N --no-scan` plus 2 `mailwidget worker` processes, on
a throwaway PostgreSQL cluster with a real Dovecot; the same with 1 API process, so the
scaling factor is a ratio measured in one run.

    .venv/bin/python bench/load.py [--users 64] [--seconds 30] [--processes 1,2]

The load generator is asyncio + httpx, one keep-alive connection per user (each user is a
widget); it runs on the same machine as the servers and takes CPU from them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from crm.store.db import migrate  # noqa: E402
from tests.factories import UserRef, make_org, make_user  # noqa: E402
from tests.mails import business_mail  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.net import free_port, wait_for_port  # noqa: E402
from tests.servers.postgres import PostgresCluster  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402

MIX = (("draft", 70), ("save", 10), ("duplicates", 10), ("events", 10))
BODY = "Hello,\n\nPlease send us a quote for 40 units.\n\nBest regards,\nTaro Yamada\nExample Trading Co., Ltd.\nTel: +81 3-1234-5678\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


class Deployment:
    """API processes and scan workers on one database, started and stopped together."""

    def __init__(self, url: str, key: str, data_dir: Path, processes: int, scan_workers: int, scan_interval: float) -> None:
        self.port = free_port()
        env = {
            **os.environ, "DATABASE_URL": url, "MAILWIDGET_SECRET_KEY": key, "MAILWIDGET_DATA_DIR": str(data_dir),
            "MAILWIDGET_ALLOW_PRIVATE_HOSTS": "1", "PYTHONPATH": str(ROOT),
        }
        cli = [sys.executable, "-m", "widget_api.cli"]
        serve = [*cli, "serve", "--port", str(self.port), "--no-scan"] + (["--workers", str(processes)] if processes > 1 else [])
        self.log = data_dir / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.procs = [subprocess.Popen(serve, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)]
        self.procs += [
            subprocess.Popen([*cli, "worker", "--interval", str(scan_interval)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(scan_workers)
        ]
        wait_for_port(self.port, timeout=120, what="mailwidget serve", alive=lambda: self.procs[0].poll() is None)
        deadline = time.monotonic() + 120
        while self.log.read_text().count("Application startup complete") < processes:  # every API process ready, not only the first
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"the API processes did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by (the API processes, the scan workers)."""

        def of(p: psutil.Process) -> float:
            try:
                return sum(p.cpu_times()[:2]) + sum(sum(c.cpu_times()[:2]) for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                return 0.0

        return of(psutil.Process(self.procs[0].pid)), sum(of(psutil.Process(p.pid)) for p in self.procs[1:])

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


async def user_loop(base: str, user: UserRef, message_id: str, stop_at: float, warm_until: float, out: list[tuple[str, float, int, bool]], seq: itertools.count) -> None:  # type: ignore[type-arg]
    ops = [name for name, weight in MIX for _ in range(weight)]
    rng = random.Random(user.id)
    async with httpx.AsyncClient(base_url=base, headers=user.headers, timeout=30) as client:
        while (now := time.perf_counter()) < stop_at:
            op = rng.choice(ops)
            start = time.perf_counter()
            if op == "draft":
                # As the Thunderbird widget asks: by folder and Message-ID (it knows no UID).
                r = await client.get("/api/v1/messages/draft", params={"folder": "INBOX", "message_id": message_id})
            elif op == "save":
                n = next(seq)
                r = await client.post("/api/v1/leads", json={"last_name": "Yamada", "company": f"Load {n}", "email": f"buyer{n}@load{user.id}.example"})
            elif op == "duplicates":
                r = await client.get("/api/v1/leads", params={"email": "taro.yamada@example-trading.co.jp", "limit": 5})
            else:
                r = await client.get("/api/v1/calendar/events", params={"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"})
            out.append((op, (time.perf_counter() - start) * 1000, r.status_code, now >= warm_until))


async def run_load(base: str, users: list[tuple[UserRef, str]], seconds: float, warm: float) -> tuple[list[tuple[str, float, int, bool]], float]:
    """(op, ms, status, after the warm-up) of every request, and the seconds measured."""
    out: list[tuple[str, float, int, bool]] = []
    start = time.perf_counter()
    seq = itertools.count(int(time.time() * 1000))
    await asyncio.gather(*(user_loop(base, u, mid, start + warm + seconds, start + warm, out, seq) for u, mid in users))
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warm", type=float, default=5.0)
    parser.add_argument("--processes", default="1,2", help="API process counts to measure, comma-separated")
    parser.add_argument("--scan-workers", type=int, default=2)
    parser.add_argument("--scan-interval", type=float, default=30.0, help="seconds between a worker's passes over every mailbox")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    dovecot = Dovecot().start()
    pg = PostgresCluster().start()
    try:
        key = Fernet.generate_key().decode()
        results = {}
        for processes in [int(p) for p in args.processes.split(",")]:
            url = pg.create_database()  # a fresh database per run: the saves of one never slow the next
            migrate(url)
            runtime = Runtime.build(Settings(database_url=url, secret_keys=[key], data_dir=tmp, allow_private_hosts=True))
            org = make_org(runtime, "Load")
            users = []
            for i in range(args.users):
                imap_user = dovecot.add_user()
                mid = f"<load{i}@load.example>"
                dovecot.append(imap_user.name, "INBOX", business_mail(body=BODY, message_id=mid))
                users.append((make_user(runtime, org, f"rep{i}@load.example"), mid, imap_user))
            runtime.close()
            deployment = Deployment(url, key, tmp, processes, args.scan_workers, args.scan_interval)
            try:
                with httpx.Client(base_url=deployment.base) as c:
                    for user, _mid, imap_user in users:  # the widget's first step: connect the mailbox
                        body = {"host": imap_user.host, "port": imap_user.port, "security": "plain", "username": imap_user.name, "password": imap_user.password}
                        r = c.post("/api/v1/mailboxes", json=body, headers=user.headers)
                        assert r.status_code == 201, r.text
                cpu_before, (api_before, workers_before) = psutil.cpu_times(), deployment.cpu_seconds()
                everything, seconds = asyncio.run(run_load(deployment.base, [(u, mid) for u, mid, _ in users], args.seconds, args.warm))
                cpu_after, (api_after, workers_after) = psutil.cpu_times(), deployment.cpu_seconds()
            finally:
                deployment.stop()
            busy = 1 - (cpu_after.idle - cpu_before.idle) / max(sum(cpu_after) - sum(cpu_before), 1e-9)
            samples = [(op, ms, status) for op, ms, status, measured in everything if measured]
            # CPU per request over the whole run (warm-up too): how much work a request is,
            # whatever share of the cores the processes got from the scheduler
            api_ms = (api_after - api_before) * 1000 / max(len(everything), 1)
            results[processes] = (samples, seconds, busy, api_ms, workers_after - workers_before)

        print(f"{args.users} users, {args.seconds:g} s measured after {args.warm:g} s warm-up, {args.scan_workers} scan workers, PostgreSQL, Dovecot; {psutil.cpu_count()} cores")
        print(f"load average {psutil.getloadavg()[0]:.1f} (other sessions' work included)")
        print(f"{'API processes':>13} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU busy':>9} {'API CPU ms/req':>15} {'workers CPU s':>14}   p50 by kind")
        for processes, (samples, seconds, busy, api_ms, workers_cpu) in results.items():
            lat = [ms for _op, ms, _s in samples]
            errors = sum(1 for _op, _ms, s in samples if s >= 400)
            kinds = " ".join(f"{op} {statistics.median([ms for o, ms, _ in samples if o == op]):.0f}" for op, _ in MIX if any(o == op for o, _, _ in samples))
            print(f"{processes:13d} {len(samples):9d} {len(samples) / seconds:8.1f} {percentile(lat, 0.5):8.1f} {percentile(lat, 0.99):8.1f} {errors:7d} {busy:8.0%} {api_ms:15.1f} {workers_cpu:14.1f}   {kinds}")
            statuses = Counter(s for _op, _ms, s in samples)
            if errors:
                print(f"{'':13} statuses: {dict(statuses)}")
        if 1 in results and len(results) > 1:
            base_rate = len(results[1][0]) / results[1][1]
            for processes, (samples, seconds, *_rest) in results.items():
                if processes != 1:
                    print(f"throughput {processes} processes / 1 process: {len(samples) / seconds / base_rate:.2f}x")
    finally:
        pg.stop()
        dovecot.stop()


if __name__ == "__main__":
    main()
