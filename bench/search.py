"""Search from the panel over 20,000 leads of one organisation (among 20,000 of another):
GET /api/v1/search through the app (the folded query tested against the stored search key
in SQL; a GIN trigram index on PostgreSQL), p50 beside the naive way in the same run (read
every lead of the organisation, fold name/company/email/phone in Python, compare).

    .venv/bin/python bench/search.py [--db sqlite|postgres|both]
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

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from crm.domain.search import fold, phone_digits, query_needle  # noqa: E402
from crm.store.db import migrate  # noqa: E402
from crm.store.models import Lead, lead_search_key  # noqa: E402
from tests.factories import make_org, make_user  # noqa: E402
from widget_api.config import Settings  # noqa: E402
from widget_api.main import create_app  # noqa: E402
from widget_api.runtime import Runtime  # noqa: E402

RUNS = 15
N = 20_000
KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノ"
QUERIES = {"name (half-width kana)": "ｻﾄｳｶｷ", "company": "さくら物産12345", "phone": "03-1234-9876", "no hit": "存在しない名前"}


def p50(fn) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def rows(org: int, owner: int) -> list[dict[str, object]]:
    out = []
    for i in range(N):
        row = {
            "organisation_id": org, "owner_id": owner, "last_name": "サトウ" + KANA[i % 25] + KANA[(i // 25) % 25], "first_name": "花子",
            "company": f"さくら物産{i}", "email": f"p{i}@client{i % 900}.example", "phone": f"03-{1000 + i % 9000}-{i % 10000:04d}",
            "source": "api", "status": "open",
        }
        row["search_key"] = lead_search_key(row)
        out.append(row)
    return out


def naive(session, org: int, q: str) -> list[int]:  # type: ignore[no-untyped-def]
    needle = query_needle(q)
    found = []
    for lead in session.execute(select(Lead.id, Lead.first_name, Lead.last_name, Lead.company, Lead.email, Lead.phone, Lead.mobile).where(Lead.organisation_id == org).order_by(Lead.id)):
        texts = [fold(f"{lead.last_name or ''}{lead.first_name or ''}"), fold(f"{lead.first_name or ''}{lead.last_name or ''}"), fold(lead.company), fold(lead.email)]
        if any(needle in t for t in texts) or any(needle in d for p in (lead.phone, lead.mobile) for d in phone_digits(p)):
            found.append(lead.id)
            if len(found) > 20:
                break
    return found


def bench(url: str, tmp: Path, label: str) -> None:
    migrate(url)
    runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp))
    org, other = make_org(runtime, "Acme"), make_org(runtime, "Other")
    user = make_user(runtime, org, "rep@acme.example")
    other_user = make_user(runtime, other, "rep@other.example")
    with runtime.sessions.begin() as s:
        for o, u in ((org, user), (other, other_user)):
            data = rows(o.id, u.id)
            for start in range(0, N, 5000):
                s.execute(insert(Lead), data[start:start + 5000])
    with runtime.sessions.begin() as s:
        s.execute(text("ANALYZE"))
    client = TestClient(create_app(runtime.settings, runtime))
    print(f"\n{label}: {N:,} leads of the organisation, {N:,} of another; p50 of {RUNS} requests")
    print(f"{'query':<24} {'hits':>5} {'API p50':>10} {'naive p50':>10} {'ratio':>7}")
    for name, q in QUERIES.items():
        def api(q: str = q) -> list[int]:
            r = client.get("/api/v1/search", params={"q": q, "types": "lead"}, headers=user.headers)
            assert r.status_code == 200, r.text
            return [item["id"] for item in r.json()["items"]]
        hits = api()
        with runtime.sessions() as s:
            assert naive(s, org.id, q)[:20] == hits, name  # the same answer both ways
            slow = p50(lambda s=s, q=q: naive(s, org.id, q))
        fast = p50(api)
        print(f"{name:<24} {len(hits):>5} {fast:>8.1f} ms {slow:>8.1f} ms {slow / fast:>6.1f}×")
    client.close()
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    from tests.servers.postgres import bench_databases

    with tempfile.TemporaryDirectory() as tmp:
        for label, url in bench_databases(args.db, "search"):
            bench(url, Path(tmp), label)

if __name__ == "__main__":
    main()
