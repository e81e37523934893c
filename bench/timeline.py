"""The timeline and the auto-log scan at scale:
- the first page (20 entries) of a lead's timeline of 10,000 entries, among 100,000 entries
  of other leads, through the API: p50 beside the naive way (load the lead's entries, sort
  in Python) in the same run, on SQLite and PostgreSQL (a throwaway cluster);
- the auto-log scan of a 10,000-message INBOX where 200 mails are with 20 auto-logged
  people: the first scan (logged into the database), the incremental scan after 50 new
  mails, and with nothing new, beside the naive scan (fetch every From/To/Cc header and
  filter in Python, nothing logged).

    .venv/bin/python bench/timeline.py [--db sqlite|postgres|both] [--only timeline|scan]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from crm.domain.principal import Principal  # noqa: E402
from crm.services import leads, mail_log, timeline  # noqa: E402
from crm.store.db import migrate  # noqa: E402
from crm.store.timeline import TimelineEntry  # noqa: E402
from tests.factories import connect_mailbox, make_org, make_user  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.mail_log_scan import scan_mailbox  # noqa: E402
from widget_api.main import create_app  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402

RUNS = 50


def runtime_on(url: str, tmp: Path) -> Runtime:
    migrate(url)
    return Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp, allow_private_hosts=True))


def p50(fn) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_timeline(url: str, tmp: Path, label: str) -> None:
    runtime = runtime_on(url, tmp)
    org = make_org(runtime, "Bench")
    user = make_user(runtime, org, "rep@acme.example")
    principal = Principal(user.id, org.id, user.email)
    with runtime.sessions.begin() as s:
        ids = [leads.create_lead(s, principal, {"last_name": f"L{i}", "email": f"p{i}@c{i}.example"}, source="api").id for i in range(11)]
    target, others = ids[0], ids[1:]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    kinds = ("mail", "status", "campaign", "meeting", "automatic_mail")

    def rows(lead_id: int, n: int) -> list[dict[str, object]]:
        return [
            {"organisation_id": org.id, "record_type": "lead", "record_id": lead_id, "kind": kinds[i % 5], "at": start + timedelta(minutes=rng.randrange(10**6)),
             "summary": f"entry {i}", "payload": {"n": i}, "created_at": start}
            for i in range(n)
        ]

    with runtime.sessions.begin() as s:
        s.execute(insert(TimelineEntry), rows(target, 10_000))
        for other in others:
            s.execute(insert(TimelineEntry), rows(other, 10_000))
    if runtime.engine.dialect.name == "postgresql":
        # As autovacuum would soon after such a load: without statistics the planner takes the
        # table for tiny and sorts the lead's 10,000 entries (1.8 ms) instead of walking the
        # keyset index backwards (0.05 ms).
        with runtime.engine.begin() as conn:
            conn.execute(text("ANALYZE timeline_entries"))
    with TestClient(create_app(runtime.settings, runtime)) as client:
        path = f"/api/v1/leads/{target}/timeline"

        def ours() -> None:
            r = client.get(path, params={"limit": 20}, headers=user.headers)
            assert r.status_code == 200 and len(r.json()["entries"]) == 20

        def deep() -> None:
            client.get(path, params={"limit": 20, "before": cursor}, headers=user.headers)

        first = p50(ours)
        cursor = None
        for _ in range(250):  # page 250 of 500
            cursor = client.get(path, params={"limit": 20, **({"before": cursor} if cursor else {})}, headers=user.headers).json()["next"]
        page250 = p50(deep)

    def naive() -> None:
        with runtime.sessions() as s:
            everything = list(s.scalars(select(TimelineEntry).where(TimelineEntry.record_type == "lead", TimelineEntry.record_id == target)))
            top = sorted(everything, key=lambda e: (e.at, e.id), reverse=True)[:20]
            assert len(top) == 20

    def service() -> None:
        with runtime.sessions() as s:
            entries, _next = timeline.page(s, principal, "lead", target, limit=20)
            assert len(entries) == 20

    service_ms = p50(service)
    naive_ms = p50(naive)
    print(f"[{label}] timeline of 10,000 entries (110,000 in the table), first page of 20, p50 of {RUNS}:")
    print(f"  through the API (keyset on (record, at, id)): {first:7.2f} ms   page 250: {page250:7.2f} ms")
    print(f"  the same page from the service, no HTTP:      {service_ms:7.2f} ms")
    print(f"  naive (load the lead's 10,000, sort in Python, no HTTP): {naive_ms:7.2f} ms   ({naive_ms / first:.0f}x the API, {naive_ms / service_ms:.0f}x the service)")
    runtime.close()


PEOPLE = [f"buyer{i}@customer{i}.co.jp" for i in range(20)]


def message(n: int, sender: str, to: str = "rep@acme.example") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: offer {n}\r\nDate: Thu, 19 Nov 2026 10:00:00 +0900\r\nMessage-ID: <m{n}@bench.example>\r\n\r\nHello {n}.\r\n").encode()


def corpus(count: int, matching: int, start: int) -> list[bytes]:
    rng = random.Random(start)
    out = [message(start + i, f"someone{rng.randrange(10**6)}@other{rng.randrange(500)}.example") for i in range(count - matching)]
    for j in range(matching):
        out.insert(rng.randrange(len(out) + 1), message(start + count + j, PEOPLE[j % len(PEOPLE)]))
    return out


def bench_scan(tmp: Path) -> None:
    # sdbox: Dovecot's own storage (see bench/spam.py: maildir re-reads 10,000 files per sync).
    dovecot = Dovecot(mail_format="sdbox").start()
    try:
        imap_user = dovecot.add_user()
        with dovecot.imap(imap_user.name) as c:
            messages = corpus(10_000, 200, 0)
            for i in range(0, len(messages), 500):
                c.multiappend("INBOX", messages[i : i + 500])
            c.select_folder("INBOX")
            total = len(c.search(["ALL"]))
            c.search(["FROM", "nobody@nowhere.example"])  # a live server has its From cache warm (see bench/spam.py)
        runtime = runtime_on(f"sqlite:///{tmp / 'scan.db'}", tmp)
        org = make_org(runtime, "Bench")
        user = make_user(runtime, org, "rep@acme.example")
        principal = Principal(user.id, org.id, user.email)
        with TestClient(create_app(runtime.settings, runtime)) as client:
            assert connect_mailbox(client, user, imap_user).status_code == 201
        with runtime.sessions.begin() as s:
            for i, person in enumerate(PEOPLE):
                lead = leads.create_lead(s, principal, {"last_name": f"B{i}", "email": person}, source="api")
                mail_log.set_auto_log(s, principal, "lead", lead.id, True)

        with dovecot.imap(imap_user.name) as c:
            start = time.perf_counter()
            c.select_folder("INBOX", readonly=True)
            headers = c.fetch(c.search(["ALL"]), ["BODY.PEEK[HEADER.FIELDS (FROM TO CC)]"])
            wanted = set(PEOPLE)
            hits = [u for u, d in headers.items() if {a.lower() for _n, a in getaddresses([d[b"BODY[HEADER.FIELDS (FROM TO CC)]"].decode()])} & wanted]
            naive = time.perf_counter() - start

        start = time.perf_counter()
        first = scan_mailbox(runtime, principal)
        first_ms = (time.perf_counter() - start) * 1000
        with dovecot.imap(imap_user.name) as c:
            c.multiappend("INBOX", corpus(50, 1, 20_000))
        start = time.perf_counter()
        after_new = scan_mailbox(runtime, principal)
        new_ms = (time.perf_counter() - start) * 1000
        idle = []
        for _ in range(20):
            start = time.perf_counter()
            scan_mailbox(runtime, principal)
            idle.append((time.perf_counter() - start) * 1000)
        print(f"auto-log scan: INBOX of {total} messages, {len(PEOPLE)} auto-logged people, {len(hits)} of their mails")
        print(f"  naive (fetch every From/To/Cc header, filter in Python, nothing logged): {naive * 1000:7.1f} ms")
        print(f"  first scan (SEARCH, fetch and log the {first['logged']} matches):        {first_ms:7.1f} ms   ({naive * 1000 / first_ms:.1f}x faster)")
        print(f"  after 50 new mails ({after_new['logged']} to log):                              {new_ms:7.1f} ms")
        print(f"  nothing new, p50 of 20 (UIDNEXT: no SEARCH, no FETCH):          {statistics.median(idle):7.1f} ms")
        runtime.close()
    finally:
        dovecot.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--only", choices=("timeline", "scan"), help="run one of the two benchmarks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        from tests.servers.postgres import bench_databases

        if args.only != "scan":
            for label, url in bench_databases(args.db, "timeline"):
                bench_timeline(url, Path(tmp), label)
        if args.only != "timeline":
            bench_scan(Path(tmp))


if __name__ == "__main__":
    main()
