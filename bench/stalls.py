"""One user's heavy requests must not stall the others (issue 14's stalls).

    .venv/bin/python bench/stalls.py [--upload-mb 48] [--import-mb 100]

The API in its own uvicorn process on SQLite with a loopback Dovecot. While one token
uploads a message of --upload-mb (base64 HTML) to /messages/draft/raw and then imports a CSV
of --import-mb (a job: the upload answers 202, the job is polled until done), another token
keeps asking `GET /health` and a draft of a small mail from IMAP. Printed: p50/p99/max of
both probes during the heavy work, the same probes on the idle server (the naive baseline in
this run), the heavy requests' own time and status, and the server's peak RSS (psutil,
sampled every 50 ms). Targets: p99 ≤ 100 ms, peak RSS ≤ 400 MB.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.factories import UserRef, connect_mailbox  # noqa: E402
from tests.mails import business_mail  # noqa: E402
from tests.servers.api import api_process  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def html_mail(size: int) -> bytes:
    unit = "<p>" + "見積もりのご依頼です。" * 20 + "</p>\n"
    html = unit * (size * 3 // 4 // len(unit.encode()))  # base64 makes 4 bytes of 3: `size` on the wire
    body = base64.encodebytes(html.encode())
    head = b"From: Taro Yamada <taro@example.co.jp>\r\nTo: rep@bench.example\r\nSubject: big\r\nMessage-ID: <big@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    return head + body


def csv_of(size: int) -> bytes:
    """A CSV of at most `size` bytes (the API takes up to 100 MB)."""
    rows, i, out = [b"email,company,last_name,first_name\n"], 0, 0
    while True:
        row = f"lead{i}@example{i % 997}.co.jp,株式会社サンプル{i},山田{i},太郎\n".encode()
        if out + len(row) + len(rows[0]) > size:
            break
        rows.append(row)
        out += len(row)
        i += 1
    return b"".join(rows)


def probe(client: httpx.Client, path: str, params: dict[str, object], headers: dict[str, str], stop: threading.Event, phase: list[str], out: dict[str, list[float]]) -> None:
    """GET path until stop, each answer's milliseconds filed under the phase it began in."""
    while not stop.is_set():
        began, started = phase[0], time.perf_counter()
        client.get(path, params=params, headers=headers).raise_for_status()
        out.setdefault(began, []).append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)


def figures(values: list[float]) -> str:
    return f"n={len(values):4d} p50 {percentile(values, 0.5):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms  max {max(values):7.1f} ms"


def run(base: str, heavy: UserRef, rep: UserRef, process: psutil.Process, uid: int, user, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """The probes on the idle server, then during the heavy work; the figures printed."""
    raw, csv = html_mail(args.upload_mb * 2**20), csv_of(args.import_mb * 2**20)
    with httpx.Client(base_url=base, timeout=600) as client:
        assert connect_mailbox(client, rep, user).status_code == 201
        draft = ("/api/v1/messages/draft", {"folder": "INBOX", "uid": uid}, rep.headers)
        health = ("/api/v1/health", {}, {})
        for _ in range(20):  # warm: pool, folder selected, OpenAPI built
            client.get(draft[0], params=draft[1], headers=draft[2])
            client.get(health[0])
        idle: dict[str, list[float]] = {"health": [], "draft": []}
        for name, (path, params, headers) in (("health", health), ("draft", draft)):
            for _ in range(100):
                started = time.perf_counter()
                client.get(path, params=params, headers=headers).raise_for_status()
                idle[name].append((time.perf_counter() - started) * 1000)
        rss_idle = process.memory_info().rss

        busy: dict[str, dict[str, list[float]]] = {"health": {}, "draft": {}}
        phase = ["upload"]
        heavy_results: list[str] = []
        peak = [rss_idle]
        stop = threading.Event()

        def sample_rss() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.05)

        def heavy_work() -> None:
            with httpx.Client(base_url=base, timeout=600) as own:
                started = time.perf_counter()
                r = own.post("/api/v1/messages/draft/raw", content=raw, headers={**heavy.headers, "Content-Type": "message/rfc822"})
                heavy_results.append(f"upload {len(raw) / 2**20:.0f} MB: {r.status_code} in {time.perf_counter() - started:.1f} s")
                phase[0] = "import"
                started = time.perf_counter()
                r = own.post("/api/v1/imports/leads", files={"file": ("leads.csv", csv, "text/csv")}, data={"mode": "row_by_row"}, headers=heavy.headers)
                heavy_results.append(f"import {len(csv) / 2**20:.0f} MB: upload {r.status_code} in {time.perf_counter() - started:.1f} s")
                job = r.json()
                while job.get("status") in ("queued", "running"):
                    time.sleep(0.5)
                    job = own.get(r.headers["location"], headers=heavy.headers).json()
                heavy_results.append(f"job {job.get('status')} in {time.perf_counter() - started:.1f} s: {job.get('progress')}, {job.get('counts')}")

        threads = [threading.Thread(target=sample_rss)]
        threads += [threading.Thread(target=probe, args=(httpx.Client(base_url=base, timeout=600), *spec, stop, phase, busy[name])) for name, spec in (("health", health), ("draft", draft))]
        for t in threads:
            t.start()
        worker = threading.Thread(target=heavy_work)
        worker.start()
        worker.join()
        stop.set()
        for t in threads:
            t.join()

    print(f"server RSS idle {rss_idle / 2**20:.0f} MB, peak during the heavy work {peak[0] / 2**20:.0f} MB (target ≤ 400 MB)")
    print("; ".join(heavy_results))
    for name in ("health", "draft"):
        print(f"{name:6} idle:          {figures(idle[name])}")
        for during, values in busy[name].items():
            ratio = percentile(values, 0.99) / percentile(idle[name], 0.99)
            print(f"{name:6} during {during}: {figures(values)}  (p99 {ratio:.1f}x idle; target ≤ 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-mb", type=int, default=48)
    parser.add_argument("--import-mb", type=int, default=100)
    args = parser.parse_args()

    dovecot = Dovecot().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        user = dovecot.add_user()
        uid = dovecot.append(user.name, "INBOX", business_mail())
        with api_process(tmp, ["heavy@bench.example", "rep@bench.example"]) as (base, (heavy, rep), server):
            run(base, heavy, rep, psutil.Process(server.pid), uid, user, args)
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
