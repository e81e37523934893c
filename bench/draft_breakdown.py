"""Where the time of one draft request goes: each section the endpoint runs, timed in this
process on the same runtime the server builds (SQLite, a local Dovecot, warm connection),
beside the HTTP floor (GET /api/v1/health through uvicorn) and the whole request.

    .venv/bin/python bench/draft_breakdown.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from fastapi import Request  # noqa: E402

from crm.domain.drafts import MessageRef  # noqa: E402
from crm.services import mailboxes, organisations  # noqa: E402
from crm.store.db import migrate  # noqa: E402
from tests.factories import connect_mailbox, make_org, make_user  # noqa: E402
from tests.mails import business_mail  # noqa: E402
from tests.servers.api import api_process  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.routes.messages import draft_out  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402
from widget_api.schemas import MessageRefIn  # noqa: E402

BODY = "Hello,\n\n" + "Please find our request below.\n" * 150 + "\nBest regards,\nTaro Yamada\nExample Trading Co., Ltd.\nTel: +81 3-1234-5678\n"


def median_ms(fn: Callable[[], object], runs: int, clock: Callable[[], float] = time.perf_counter) -> float:
    for _ in range(5):
        fn()
    out = []
    for _ in range(runs):
        start = clock()
        fn()
        out.append((clock() - start) * 1000)
    return statistics.median(out)


def cpu_ms(fn: Callable[[], object], runs: int) -> float:
    """Median CPU time of this thread: on cores shared with other work, the wall clock
    mostly measures the wait for a core."""
    return median_ms(fn, runs, time.thread_time)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    dovecot = Dovecot().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        imap_user = dovecot.add_user()
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(body=BODY))
        with api_process(tmp, ["rep@bench.example"]) as (base, (rep,), _server), httpx.Client(base_url=base) as client:
            assert connect_mailbox(client, rep, imap_user).status_code == 201
            params = {"folder": "INBOX", "uid": uid}
            whole = median_ms(lambda: client.get("/api/v1/messages/draft", params=params, headers=rep.headers).raise_for_status(), args.runs)
            floor = median_ms(lambda: client.get("/api/v1/health").raise_for_status(), args.runs)
            bad_token = median_ms(lambda: client.get("/api/v1/messages/draft", params=params, headers={"Authorization": "Bearer x"}), args.runs)

        # The same sections in this process, on a runtime like the server's.
        url = f"sqlite:///{tmp / 'bench.db'}"
        migrate(url)
        key = Fernet.generate_key().decode()
        runtime = Runtime.build(Settings(database_url=url, secret_keys=[key], data_dir=tmp, allow_private_hosts=True))
        org = make_org(runtime, "Breakdown")
        user = make_user(runtime, org, "rep2@bench.example")
        with runtime.sessions.begin() as s:
            principal = organisations.authenticate(s, user.token)
            mailboxes.save_account(
                s, principal, runtime.secrets, host=imap_user.host, port=imap_user.port, security="plain", username=imap_user.name, secret=imap_user.password
            )
        ref = MessageRef("INBOX", uid)
        request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "state": {"language": "en"}})

        def auth() -> object:
            with runtime.read_sessions() as session:
                return organisations.authenticate(session, user.token)

        def mailbox_and_context() -> object:
            with runtime.read_sessions() as session:
                account, _ctx = mailboxes.account_and_context(session, principal)
            return runtime.pool.get(runtime.settings_of(account))

        def empty_session() -> None:
            with runtime.read_sessions() as session:
                session.connection()

        box = mailbox_and_context()
        with runtime.sessions() as session:
            ctx = mailboxes.read_context(session, principal)
        opened = box.open_message(ref, ctx)  # type: ignore[attr-defined]
        key_ = MessageRefIn(folder="INBOX", uid=uid).key()

        def response() -> object:
            with runtime.read_sessions() as session:
                return draft_out(request, session, principal, opened, key_)

        out = response()
        sections = {
            "token → principal": cpu_ms(auth, args.runs),
            "one empty read session": cpu_ms(empty_session, args.runs),
            "account + secret + pool + read context": cpu_ms(mailbox_and_context, args.runs),
            "IMAP FETCH(es) + parse + extract": cpu_ms(lambda: box.open_message(ref, ctx), args.runs),  # type: ignore[attr-defined]
            "duplicates + capture lookup (draft_out)": cpu_ms(response, args.runs),
            "response JSON (pydantic dump)": cpu_ms(lambda: out.model_dump_json(), args.runs),  # type: ignore[attr-defined]
        }
        runtime.close()
        print(f"{'section (CPU time of this thread)':42} {'p50 ms':>8}")
        for name, ms in sections.items():
            print(f"{name:42} {ms:8.2f}")
        print(f"{'sum of sections':42} {sum(sections.values()):8.2f}")
        print(f"{'HTTP (wall clock) floor: GET /health':42} {floor:8.2f}")
        print(f"{'rejected token (401) via uvicorn':42} {bad_token:8.2f}")
        print(f"{'whole draft request via uvicorn':42} {whole:8.2f}")
        print(f"load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
