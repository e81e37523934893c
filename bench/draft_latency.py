"""Draft latency through the API against a local Dovecot, warm connection.

    .venv/bin/python bench/draft_latency.py [--runs N]

For a 5 KB message and one with a 20 MB attachment: p50 / p99 of GET /api/v1/messages/draft
and the bytes fetched from IMAP; beside it, in the same run, the naive way (fetch the whole
message, parse it, extract the draft).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


import httpx  # noqa: E402
import psutil  # noqa: E402

from crm.domain.drafts import ReadContext  # noqa: E402
from mail_adapter.leads import extract_lead  # noqa: E402
from mail_adapter.parsing import parse_message  # noqa: E402
from tests.factories import connect_mailbox  # noqa: E402
from tests.mails import business_mail  # noqa: E402
from tests.servers.api import api_process  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402

BODY = "Hello,\n\n" + "Please find our request below.\n" * 150 + "\nBest regards,\nTaro Yamada\nExample Trading Co., Ltd.\nTel: +81 3-1234-5678\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--naive-runs", type=int, default=5)
    args = parser.parse_args()

    dovecot = Dovecot().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        user = dovecot.add_user()
        small_raw = business_mail(body=BODY)
        big_raw = business_mail(body=BODY, attachment_bytes=20 * 2**20)
        uids = {"5 KB": dovecot.append(user.name, "INBOX", small_raw), "20 MB attachment": dovecot.append(user.name, "INBOX", big_raw)}
        sizes = {"5 KB": len(small_raw), "20 MB attachment": len(big_raw)}

        # The API as users meet it: uvicorn in its own process, a keep-alive HTTP client.
        with api_process(tmp, ["rep@bench.example"]) as (base, (rep,), server), httpx.Client(base_url=base) as client:
            assert connect_mailbox(client, rep, user).status_code == 201
            server_process = psutil.Process(server.pid)
            print(f"{'message':18} {'size':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7} {'fetched':>10} | {'naive p50 ms':>12} {'naive fetched':>13} {'speed-up':>9}")
            results = {}
            for label, uid in uids.items():
                params = {"folder": "INBOX", "uid": uid}
                for _ in range(20):  # warm: connection, folder selected, caches
                    client.get("/api/v1/messages/draft", params=params, headers=rep.headers)
                fetched = client.get("/api/v1/messages/draft", params=params, headers=rep.headers).json()["bytes_fetched"]
                # The server's CPU time per request: unlike the wall clock, it barely moves
                # when other work shares the machine's cores.
                cpu_before = sum(server_process.cpu_times()[:2])
                api = timed(lambda p=params: client.get("/api/v1/messages/draft", params=p, headers=rep.headers).raise_for_status(), args.runs)
                cpu_ms = (sum(server_process.cpu_times()[:2]) - cpu_before) * 1000 / args.runs

                with dovecot.imap(user.name) as imap:
                    imap.select_folder("INBOX", readonly=True)

                    def naive(u: int = uid) -> None:
                        raw = imap.fetch([u], ["BODY.PEEK[]"])[u][b"BODY[]"]
                        extract_lead(parse_message(raw), ReadContext())

                    naive_times = timed(naive, args.naive_runs)
                p50, p99, n50 = percentile(api, 0.5), percentile(api, 0.99), statistics.median(naive_times)
                results[label] = p50
                print(f"{label:18} {sizes[label] / 1024:8.0f}K {p50:8.2f} {p99:8.2f} {cpu_ms:7.2f} {fetched:10d} | {n50:12.1f} {sizes[label]:13d} {n50 / p50:8.0f}x")
            print(f"20 MB message / 5 KB message (p50): {results['20 MB attachment'] / results['5 KB']:.2f}x; load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
