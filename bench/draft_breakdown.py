"""Where the CPU of one draft request goes (5 KB mail, SQLite, a local Dovecot, warm
connection), measured three ways in one run:

1. through uvicorn (own process, keep-alive client): wall p50 and the server's CPU per
   request, cold (a server without the draft cache) and warm (the message reopened, from
   the cache), beside GET /health (the HTTP floor) and a rejected token (401);
2. the app driven in-process over ASGI (no uvicorn, no HTTP client): CPU per request of the
   whole process and of the event-loop thread (routing, dependencies, middlewares, the
   response; the rest is the endpoint's one thread-pool call), cold and warm;
3. the endpoint's own work, phase by phase inside real calls (CPU time of the thread,
   median), cold: token check, accounts, IMAP, MIME parsing, extraction, lookups, JSON;
   then the endpoint's call whole, cold and warm.

    .venv/bin/python bench/draft_breakdown.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from fastapi import Request  # noqa: E402

import mail_adapter.mailbox as mailbox_module  # noqa: E402
from crm.domain.drafts import MessageRef  # noqa: E402
from crm.services import mailboxes, organisations  # noqa: E402
from crm.store.db import migrate  # noqa: E402
from mail_adapter.opened_cache import OpenedCache  # noqa: E402
from tests.factories import connect_mailbox, make_org, make_user  # noqa: E402
from tests.mails import business_mail  # noqa: E402
from tests.servers.api import api_process  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.deps import Credentials, speaking  # noqa: E402
from widget_api.main import create_app  # noqa: E402
from widget_api.routes.messages import _draft_json, draft_out  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402
from widget_api.schemas import MessageRefIn  # noqa: E402

BODY = "Hello,\n\n" + "Please find our request below.\n" * 150 + "\nBest regards,\nTaro Yamada\nExample Trading Co., Ltd.\nTel: +81 3-1234-5678\n"


def through_uvicorn(client: httpx.Client, server: psutil.Process, path: str, params: dict[str, Any], headers: dict[str, str], runs: int) -> tuple[float, float]:
    """(wall p50 ms, server CPU ms per request)."""
    for _ in range(20):
        client.get(path, params=params, headers=headers)
    cpu = sum(server.cpu_times()[:2])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        client.get(path, params=params, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), (sum(server.cpu_times()[:2]) - cpu) * 1000 / runs


def in_process(runtime: Runtime, token: str, uid: int, runs: int) -> tuple[float, float]:
    """(process CPU ms, event-loop thread CPU ms) per draft request, the app called over ASGI."""
    app = create_app(runtime.settings, runtime)
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/api/v1/messages/draft",
             "raw_path": b"/api/v1/messages/draft", "root_path": "", "query_string": f"folder=INBOX&uid={uid}".encode(), "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip

    async def one() -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        assert sent[0]["status"] == 200, sent

    async def main() -> tuple[float, float]:
        for _ in range(20):
            await one()
        process, loop = time.process_time(), time.thread_time()
        for _ in range(runs):
            await one()
        return (time.process_time() - process) * 1000 / runs, (time.thread_time() - loop) * 1000 / runs

    return asyncio.run(main())


def phases(runtime: Runtime, token: str, uid: int, runs: int) -> dict[str, float]:
    """The endpoint's work (widget_api.routes.messages._draft) step by step, each step's CPU
    time inside the same call: medians over `runs` calls."""
    taken: dict[str, list[float]] = defaultdict(list)
    clock = time.thread_time

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                taken[name].append((clock() - start) * 1000)

        return run

    # MIME parsing and extraction, timed where the mailbox calls them: the rest of its
    # open_message is the IMAP client (commands, the server's answers, imapclient's parser).
    parse, read = mailbox_module.parse_fetched, mailbox_module.read_parsed
    mailbox_module.parse_fetched, mailbox_module.read_parsed = timed("MIME parsing of the fetched parts", parse), timed("extraction (read_parsed)", read)  # type: ignore[assignment]
    ref, credentials = MessageRefIn(folder="INBOX", uid=uid), Credentials(token)

    def call() -> None:
        marks = [clock()]
        request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "state": {}})
        with runtime.read_connection() as db:
            principal, accounts = mailboxes.authenticate_with_accounts(db, credentials.token)
            speaking(request, credentials, principal)
            marks.append(clock())
            account, ctx = mailboxes.pick_account(principal, accounts, ref.mailbox_id)
            marks.append(clock())
        marks.append(clock())
        mailbox = runtime.pool.get(runtime.settings_of(account))
        marks.append(clock())
        opened = mailbox.open_message(MessageRef(ref.folder, ref.uid, ref.uidvalidity, ref.message_id, ref.special_use), ctx)
        marks.append(clock())
        key = MessageRefIn(folder=opened.ref.folder, uid=opened.ref.uid, uidvalidity=opened.ref.uidvalidity, message_id=opened.message_id).key()
        with runtime.read_connection() as db:
            out = draft_out(request, db, principal, opened, key)
        marks.append(clock())
        out.model_dump_json()
        marks.append(clock())
        names = ["connection + token check and accounts (one statement)", "account picked + read context", "first connection closed", "mailbox pool + settings", "open_message",
                 "second connection: capture + duplicates (one statement) + models", "JSON encoding"]  # fmt: skip
        for name, start, end in zip(names, marks, marks[1:], strict=False):
            taken[name].append((end - start) * 1000)
        taken["sum: the endpoint's work"].append((marks[-1] - marks[0]) * 1000)

    try:
        for _ in range(20):
            call()
        taken.clear()
        for _ in range(runs):
            call()
    finally:
        mailbox_module.parse_fetched, mailbox_module.read_parsed = parse, read
    p50 = {name: statistics.median(values) for name, values in taken.items()}
    imap = p50["open_message"] - p50["MIME parsing of the fetched parts"] - p50["extraction (read_parsed)"]
    order = ["connection + token check and accounts (one statement)", "account picked + read context", "first connection closed", "mailbox pool + settings",
             "IMAP client: FETCH(es) and their answers", "MIME parsing of the fetched parts", "extraction (read_parsed)",
             "second connection: capture + duplicates (one statement) + models", "JSON encoding", "sum: the endpoint's work"]  # fmt: skip
    return {name: imap if name.startswith("IMAP client") else p50[name] for name in order}


def endpoint(runtime: Runtime, token: str, uid: int, runs: int) -> float:
    """The endpoint's thread-pool call as the route makes it: CPU ms, median."""
    ref, credentials, taken = MessageRefIn(folder="INBOX", uid=uid), Credentials(token), []
    for i in range(20 + runs):
        request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "state": {}})
        start = time.thread_time()
        _draft_json(request, ref, credentials, runtime)
        if i >= 20:
            taken.append((time.thread_time() - start) * 1000)
    return statistics.median(taken)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    dovecot = Dovecot().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        imap_user = dovecot.add_user()
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(body=BODY))
        params = {"folder": "INBOX", "uid": uid}
        http = {}
        # Cold: the server without the draft cache, every draft a first open; warm: the same
        # message opened again, from the cache.
        for label, env in (("cold", {"MAILWIDGET_DRAFT_CACHE_MB": "0"}), ("warm", {})):
            with api_process(Path(tempfile.mkdtemp()), ["rep@bench.example"], env=env) as (base, (rep,), server), httpx.Client(base_url=base) as client:
                assert connect_mailbox(client, rep, imap_user).status_code == 201
                process = psutil.Process(server.pid)
                http[f"draft, {label}"] = through_uvicorn(client, process, "/api/v1/messages/draft", params, rep.headers, args.runs)
                if label == "warm":
                    http["GET /health (the HTTP floor)"] = through_uvicorn(client, process, "/api/v1/health", {}, {}, args.runs)
                    http["rejected token (401)"] = through_uvicorn(client, process, "/api/v1/messages/draft", params, {"Authorization": "Bearer x"}, args.runs)

        url = f"sqlite:///{tmp / 'breakdown.db'}"
        migrate(url)
        runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp, allow_private_hosts=True))
        org = make_org(runtime, "Breakdown")
        user = make_user(runtime, org, "rep2@bench.example")
        with runtime.sessions.begin() as s:
            principal = organisations.authenticate(s, user.token)
            mailboxes.save_account(
                s, principal, runtime.secrets, host=imap_user.host, port=imap_user.port, security="plain", username=imap_user.name, secret=imap_user.password
            )
        cache = runtime.drafts
        runtime.drafts = OpenedCache(max_bytes=0)  # cold: no draft cache
        asgi = {"cold": in_process(runtime, user.token, uid, args.runs)}
        steps = phases(runtime, user.token, uid, args.runs)
        steps["the endpoint whole (_draft_json), cold"] = endpoint(runtime, user.token, uid, args.runs)
        runtime.drafts = cache
        asgi["warm"] = in_process(runtime, user.token, uid, args.runs)
        steps["the endpoint whole (_draft_json), warm: from the draft cache"] = endpoint(runtime, user.token, uid, args.runs)
        runtime.close()

        print(f"{'through uvicorn':48} {'wall p50 ms':>11} {'server CPU ms':>13}")
        for name, (wall, cpu) in http.items():
            print(f"{name:48} {wall:11.2f} {cpu:13.2f}")
        print(f"\n{'in-process over ASGI (CPU ms per draft)':60} {'cold':>7} {'warm':>7}")
        print(f"{'  whole process':60} {asgi['cold'][0]:7.2f} {asgi['warm'][0]:7.2f}")
        print(f"{'  event-loop thread: routing, dependencies, middlewares, response':60} {asgi['cold'][1]:7.2f} {asgi['warm'][1]:7.2f}")
        print(f"{'  the rest: the one thread-pool call of the endpoint':60} {asgi['cold'][0] - asgi['cold'][1]:7.2f} {asgi['warm'][0] - asgi['warm'][1]:7.2f}")
        print("\nthe endpoint's work, step by step, cold (CPU ms, p50 of each step)")
        for name, ms in steps.items():
            print(f"  {name:58} {ms:7.2f}")
        print(f"load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
