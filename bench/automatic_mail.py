"""Automatic mail (issue 16), in two parts:

- `sending`: 50 concurrent senders against a daily limit of 500 with 600 mails due, through
  a real SMTP server on loopback (aiosmtpd): exactly 500 must reach the server, 0 over, the
  other 100 waiting for tomorrow's quota; throughput (mails/s) beside one sender alone.
- `rules`: 10,000 imported leads with one rule, evaluation and queueing (added by the
  rules part of the issue; see its section below).

    .venv/bin/python bench/automatic_mail.py [--part sending|rules|all] [--db sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from crm.services import organisations, outbox  # noqa: E402
from crm.services.secrets import SecretBox  # noqa: E402
from crm.store.db import make_engine, make_session_factory, migrate  # noqa: E402
from crm.store.outbox import OutboxMail  # noqa: E402
from tests.servers.smtp import SmtpSink, smtp_server  # noqa: E402
from widget_api.outbox_sender import send_pass  # noqa: E402

# ---------------------------------------------------------------------------------------
# Part 1: sending under the daily limit
# ---------------------------------------------------------------------------------------

LIMIT = 500
DUE = 600
SENDERS = 50


def _queued_org(sessions: sessionmaker[Session], box: SecretBox, sink: SmtpSink, name: str) -> int:
    now = datetime.now(UTC)
    with sessions.begin() as s:
        org = organisations.create_organisation(s, name)
        outbox.save_smtp_settings(
            s, org.id, box, host="127.0.0.1", port=sink.port, security="none", from_address="info@acme.example",
            public_url="https://crm.acme.example", daily_limit=LIMIT,
        )
        requests = [outbox.MailRequest(f"lead{i}@example.jp", "資料のご案内", f"山田様\n資料をお送りします。({i})") for i in range(DUE)]
        outbox.enqueue_many(s, organisation_id=org.id, kind="bulk", mails=requests, now=now)
        return org.id


def _statuses(sessions: sessionmaker[Session], org_id: int) -> dict[str, int]:
    with sessions() as s:
        rows = s.execute(select(OutboxMail.status, func.count()).where(OutboxMail.organisation_id == org_id).group_by(OutboxMail.status)).all()
        return {status: count for status, count in rows}


def _run(senders: int, sessions: sessionmaker[Session], box: SecretBox) -> float:
    start = threading.Barrier(senders)
    errors: list[Exception] = []

    def sender() -> None:
        start.wait()
        try:
            send_pass(sessions, box)
        except Exception as exc:  # noqa: BLE001 - re-raised below: a bench must not hide a failure
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def sending(label: str, url: str) -> None:
    migrate(url)
    sessions = make_session_factory(make_engine(url))
    box = SecretBox([Fernet.generate_key().decode()])
    results: dict[int, tuple[float, int, dict[str, int]]] = {}
    for senders in (1, SENDERS):
        with smtp_server() as sink:
            org_id = _queued_org(sessions, box, sink, f"bench {senders} {time.time()}")
            elapsed = _run(senders, sessions, box)
            with sessions() as s:
                used = outbox.quota_status(s, org_id, datetime.now(UTC)).used
            results[senders] = (elapsed, len(sink.received), _statuses(sessions, org_id))
            over = len(sink.received) - LIMIT
            distinct = len({r.rcpt_tos[0] for r in sink.received})
            print(
                f"{label}: {senders:>2} sender(s), limit {LIMIT}, {DUE} due: {len(sink.received)} received by the server "
                f"({distinct} distinct recipients), {over} over, quota used {used}, statuses {results[senders][2]}, "
                f"{elapsed:.2f} s, {len(sink.received) / elapsed:.0f} mails/s"
            )
            assert len(sink.received) == LIMIT == used == distinct, "the limit was not exact"
    serial, parallel = results[1][0], results[SENDERS][0]
    print(f"{label}: {SENDERS} senders vs 1: {serial / parallel:.1f}x the throughput")


# ---------------------------------------------------------------------------------------
# Part 2: rule evaluation for 10,000 imported leads (the rules part of issue 16 adds it)
# ---------------------------------------------------------------------------------------

PARTS: dict[str, Callable[[str, str], None]] = {"sending": sending}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    parts = list(PARTS.values()) if args.part == "all" else [PARTS[args.part]]
    if args.db in ("sqlite", "both"):
        for part in parts:
            part("SQLite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'mail.db'}")
    if args.db in ("postgres", "both"):
        from tests.servers.postgres import PostgresCluster

        cluster = PostgresCluster({"shared_buffers": "128MB"}).start()
        try:
            for part in parts:
                part("PostgreSQL", cluster.create_database())
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
