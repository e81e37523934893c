"""Draft latency through the API against a local Dovecot, warm connection.

    .venv/bin/python bench/draft_latency.py [--runs N]

For a 5 KB message and one with a 20 MB attachment: p50 / p99 of GET /api/v1/messages/draft
and the bytes fetched from IMAP, cold (a first open: a server without the draft cache) and
warm (the message opened again: the cache on), requests to the two servers alternating;
beside it, in the same run, the naive way (fetch the whole message, parse it, extract the
draft).

The INBOX holds --inbox older messages (5,000, one every 15 minutes) besides, and the 5 KB
mail is also asked for the way the Thunderbird widget asks (folder + Message-ID, no UID):
newest (the mail just received) and 2,000 messages back; their naive way finds the
message with one SEARCH of the folder first, as a client without UIDs must.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


import httpx  # noqa: E402
import psutil  # noqa: E402

from crm.domain.drafts import MessageRef, ReadContext  # noqa: E402
from mail_adapter.leads import extract_lead  # noqa: E402
from mail_adapter.mailbox import Mailbox, MailboxSettings  # noqa: E402
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


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.body = status, body

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.body[:200]!r}")


class PlainClient:
    """A keep-alive HTTP/1.1 client on the standard library's http.client (`--client
    stdlib`): tens of µs of the client's own CPU per request, where httpx spends ~0.3–0.5 ms
    (the run prints both on GET /api/v1/health), so the figure is the server's as a native client
    (Thunderbird's) sees it."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)

    def get(self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Answer:
        for attempt in (0, 1):
            try:
                self.connection.request("GET", path + ("?" + urlencode(params) if params else ""), headers=headers or {})
                response = self.connection.getresponse()
                return Answer(response.status, response.read())
            except (http.client.RemoteDisconnected, ConnectionError):
                # uvicorn closes a keep-alive connection idle for 5 s (while the other
                # servers start): once more on a new one, as httpx does.
                self.connection.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--naive-runs", type=int, default=5, help="of the 20 MB mail; the small ones get 20× as many")
    parser.add_argument("--client", choices=("httpx", "stdlib"), default="httpx", help="the HTTP client that measures (stdlib: http.client, a lean one)")
    parser.add_argument("--inbox", type=int, default=5000, help="older messages in the INBOX besides the measured ones")
    parser.add_argument("--blocks", action="store_true", help="each server's requests in one block, not alternating (a process woken for every other request runs colder)")
    parser.add_argument("--before", type=Path, help="another source tree (an older commit, unpacked): its server measured alongside, alternating")
    args = parser.parse_args()

    dovecot = Dovecot().start()
    try:
        user = dovecot.add_user()
        small_raw = business_mail(body=BODY, message_id="<new@bench.example>")
        old_raw = business_mail(body=BODY, message_id="<old@bench.example>")
        big_raw = business_mail(body=BODY, attachment_bytes=20 * 2**20)
        back = min(2000, args.inbox)
        # The older mail arrived one every 15 minutes up to now (INTERNALDATE), as in a busy
        # inbox: 5,000 messages are 52 days, the one 2,000 back arrived 21 days ago.
        now, every = datetime.now(UTC), timedelta(minutes=15)
        old_at = now - every * back - timedelta(minutes=7)
        with dovecot.imap(user.name) as imap:
            older = [{"msg": business_mail(body=f"Message {i}.\n" * 40), "date": now - every * (args.inbox - i)} for i in range(args.inbox)]
            older.insert(len(older) - back, {"msg": old_raw, "date": old_at})
            for i in range(0, len(older), 500):
                imap.multiappend("INBOX", older[i : i + 500])
        small_uid = dovecot.append(user.name, "INBOX", small_raw)
        cases: dict[str, dict[str, str | int]] = {
            "5 KB": {"folder": "INBOX", "uid": small_uid},
            "20 MB attachment": {"folder": "INBOX", "uid": dovecot.append(user.name, "INBOX", big_raw)},
            "5 KB, by Message-ID": {"folder": "INBOX", "message_id": "<new@bench.example>"},
            f"idem, {back} back": {"folder": "INBOX", "message_id": "<old@bench.example>"},
        }
        sizes = {label: len(big_raw if label.startswith("20 MB") else small_raw) for label in cases}

        # The API as users meet it: uvicorn in its own process, a keep-alive HTTP client.
        # Two servers side by side, their requests alternating: "cold" without the draft
        # cache (every request a first open: FETCH, parsing, extraction), "warm" with it
        # (the same message opened again: served from the cache). Alternating, both see the
        # same moments of this machine's varying speed.
        with contextlib.ExitStack() as stack:
            servers = {}
            trees = [("cold", {"MAILWIDGET_DRAFT_CACHE_MB": "0"}, ROOT), ("warm", {}, ROOT)] + ([("before", {}, args.before.resolve())] if args.before else [])
            for name, env, root in trees:
                base, (rep,), server = stack.enter_context(api_process(Path(tempfile.mkdtemp()), ["rep@bench.example"], env=env, root=root))
                setup = stack.enter_context(httpx.Client(base_url=base))
                assert connect_mailbox(setup, rep, user).status_code == 201
                client: Any = setup if args.client == "httpx" else stack.enter_context(contextlib.closing(PlainClient(base)))
                servers[name] = (client, rep, psutil.Process(server.pid))
                if name == "cold":  # what the measuring client itself costs: both on the floor
                    lean = stack.enter_context(contextlib.closing(PlainClient(base)))
                    floor = {kind: percentile(timed(lambda c=c: c.get("/api/v1/health").raise_for_status(), 300), 0.5) for kind, c in (("httpx", setup), ("stdlib", lean))}
            print(f"client: {args.client}; GET /api/v1/health p50 through httpx {floor['httpx']:.2f} ms, through http.client {floor['stdlib']:.2f} ms")
            print(
                f"{'message':24} {'size':>9} | {'cold p50':>8} {'p99':>6} {'CPU':>5} {'fetched':>8} | {'warm p50':>8} {'p99':>6} {'CPU':>5} {'fetched':>7} | {'naive p50':>9} {'naive/cold':>10}"
            )
            results = {}
            for label, params in cases.items():
                fetched, times, cpu = {}, {}, {}
                for name, (client, rep, _process) in servers.items():
                    for _ in range(20):  # warm: connection, folder selected, caches
                        client.get("/api/v1/messages/draft", params=params, headers=rep.headers)
                    fetched[name] = client.get("/api/v1/messages/draft", params=params, headers=rep.headers).json()["bytes_fetched"]
                    times[name] = []
                # The server's CPU time per request: unlike the wall clock, it barely moves
                # when other work shares the machine's cores.
                cpu_before = {name: sum(process.cpu_times()[:2]) for name, (_c, _r, process) in servers.items()}
                rounds, per_round = (1, args.runs) if args.blocks else (args.runs, 1)
                for _ in range(rounds):
                    for name, (client, rep, _process) in servers.items():
                        times[name] += timed(lambda c=client, r=rep, p=params: c.get("/api/v1/messages/draft", params=p, headers=r.headers).raise_for_status(), per_round)
                for name, (_c, _r, process) in servers.items():
                    cpu[name] = (sum(process.cpu_times()[:2]) - cpu_before[name]) * 1000 / args.runs

                with dovecot.imap(user.name) as imap:
                    imap.select_folder("INBOX", readonly=True)

                    def naive(p: dict[str, str | int] = params) -> None:
                        u = int(p["uid"]) if "uid" in p else max(imap.search(["HEADER", "Message-ID", str(p["message_id"])]))
                        raw = imap.fetch([u], ["BODY.PEEK[]"])[u][b"BODY[]"]
                        extract_lead(parse_message(raw), ReadContext())

                    naive_times = timed(naive, args.naive_runs * (1 if sizes[label] > 2**20 else 20))
                n50 = statistics.median(naive_times)
                p50 = {name: percentile(t, 0.5) for name, t in times.items()}
                p99 = {name: percentile(t, 0.99) for name, t in times.items()}
                results[label] = p50
                print(
                    f"{label:24} {sizes[label] / 1024:8.0f}K | {p50['cold']:8.2f} {p99['cold']:6.2f} {cpu['cold']:5.2f} {fetched['cold']:8d} | "
                    f"{p50['warm']:8.2f} {p99['warm']:6.2f} {cpu['warm']:5.2f} {fetched['warm']:7d} | {n50:9.2f} {n50 / p50['cold']:9.1f}x"
                    + (f" | before p50 {p50['before']:.2f} p99 {p99['before']:.2f} CPU {cpu['before']:.2f}" if "before" in p50 else "")
                )
            # The fetch strategy alone, where it differs from the naive way: the adapter's
            # first open (structure, header and part 1 in one FETCH, then only the wanted
            # parts) against the whole fetch, on one connection, interleaved, no HTTP, token
            # or database on either side.
            box = Mailbox(MailboxSettings(user.host, user.port, "plain", user.name, user.password, allow_private=True))
            try:
                print(f"\n{'the adapter alone, by UID':24} {'size':>9} | {'first open p50':>14} | {'naive p50':>9} | {'naive/ours':>10}")
                for label in ("5 KB", "20 MB attachment"):
                    uid = int(cases[label]["uid"])
                    ours = lambda u=uid: box.open_message(MessageRef("INBOX", u), ReadContext())  # noqa: E731
                    naive_fetch = lambda u=uid: extract_lead(parse_message(box.run(lambda c: c.fetch([u], ["BODY.PEEK[]"])[u][b"BODY[]"])), ReadContext())  # noqa: E731
                    runs = args.naive_runs * (1 if sizes[label] > 2**20 else 100)
                    mine, theirs = [], []
                    for _ in range(runs):
                        mine += timed(ours, 1)
                        theirs += timed(naive_fetch, 1)
                    m50, t50 = statistics.median(mine), statistics.median(theirs)
                    print(f"{label:24} {sizes[label] / 1024:8.0f}K | {m50:14.3f} | {t50:9.3f} | {t50 / m50:9.2f}x")
            finally:
                box.close()
            ratio = {name: results["20 MB attachment"][name] / results["5 KB"][name] for name in ("cold", "warm")}
            print(f"20 MB message / 5 KB message (p50): cold {ratio['cold']:.2f}x, warm {ratio['warm']:.2f}x; load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
            print("(ms; CPU = the server's CPU per request; fetched = bytes from IMAP for one draft; warm = the same message reopened, from the draft cache)")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
