"""CRM at scale, on SQLite and PostgreSQL (a throwaway cluster):
- bulk add 100,000 leads to a campaign (set-based) beside the row-by-row loop;
- import a 100,000-row CSV with duplicate checking through `mailwidget import-leads`
  (wall time, and the peak RSS of that process);
- a custom view (custom company key, sorted by creation) over 1,000,000 leads: first page p50.

    .venv/bin/python bench/crm.py [--db sqlite|postgres|both] [--leads 1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from crm.domain.filters import FILTER  # noqa: E402
from crm.domain.principal import Principal  # noqa: E402
from crm.services import campaigns, custom_fields, organisations, views  # noqa: E402
from crm.store.base import utcnow  # noqa: E402
from crm.store.campaigns import CampaignMember  # noqa: E402
from crm.store.custom_fields import CustomValue  # noqa: E402
from crm.store.db import make_engine, make_session_factory, migrate, refresh_statistics  # noqa: E402
from crm.store.models import Lead  # noqa: E402


def seed_leads(sessions, org_id: int, user_id: int, count: int, field_id: int | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    ids: list[int] = []
    now = utcnow()
    for start in range(0, count, 50_000):
        with sessions.begin() as s:
            rows = [{"organisation_id": org_id, "owner_id": user_id, "last_name": f"L{i}", "company": f"Company {i % 20000}", "source": "api", "status": "open", "created_at": now, "updated_at": now} for i in range(start, min(count, start + 50_000))]
            new = list(s.scalars(insert(Lead).returning(Lead.id, sort_by_parameter_order=True), rows))
            if field_id is not None:
                s.execute(insert(CustomValue), [{"lead_id": lid, "field_id": field_id, "text_value": f"K{(start + j) % 20000}"} for j, lid in enumerate(new)])
            ids.extend(new)
    return ids


def run(db: str, url: str, leads: int) -> None:
    migrate(url)
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as s:
        org = organisations.create_organisation(s, "Bench")
        user = organisations.create_user(s, org.id, "admin@bench.example", role="admin")
        principal = Principal(user.id, org.id, user.email, "admin")
        key = custom_fields.define(s, principal, "company_key", "会社キー", "text")
        fast = [campaigns.create_campaign(s, principal, f"set-based {i}").id for i in range(5)]
        slow = campaigns.create_campaign(s, principal, "row-by-row")
        default_status = campaigns.statuses(s, slow.id)[0].id
        org_id, user_id, field_id, slow_id = org.id, user.id, key.id, slow.id

    start = time.perf_counter()
    ids = seed_leads(sessions, org_id, user_id, leads, field_id)
    with sessions.begin() as s:
        refresh_statistics(s)  # what an import or the worker's pass does after bulk changes
    if url.startswith("postgresql"):
        # Autovacuum's work soon after a bulk load (hint bits, visibility map), done now so
        # the first measured statement does not pay for it instead.
        with sessions.kw["bind"].connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) leads, custom_values")
            conn.exec_driver_sql("CHECKPOINT")  # and the seeding's dirty pages written out
    seeded = time.perf_counter() - start
    sample = ids[:100_000]

    runs = []
    for campaign_id in fast:  # five campaigns, the same 100,000 leads: the median of five runs
        start = time.perf_counter()
        with sessions.begin() as s:
            report = campaigns.add_leads(s, principal, campaign_id, sample)
        runs.append(time.perf_counter() - start)
    bulk = statistics.median(runs)
    start = time.perf_counter()
    with sessions.begin() as s:  # the naive way, one query and one insert per lead: on 10,000, scaled
        for lead_id in sample[:10_000]:
            if s.get(Lead, lead_id) is not None and s.get(CampaignMember, (slow_id, lead_id)) is None:
                s.add(CampaignMember(campaign_id=slow_id, lead_id=lead_id, status_id=default_status, added_by_id=user_id))
                s.flush()
    naive = (time.perf_counter() - start) * len(sample) / 10_000

    times = []
    filters = FILTER.validate_python({"field": "custom:company_key", "op": "equals", "value": "K42"})
    for _ in range(20):
        start = time.perf_counter()
        with sessions() as s:
            rows, total = views.query_leads(s, principal, filters, limit=50)
        times.append((time.perf_counter() - start) * 1000)

    tmp = Path(tempfile.mkdtemp())
    csv_path = tmp / "leads.csv"
    with csv_path.open("w", encoding="utf-8") as fh:
        fh.write("会社名,姓,メールアドレス,電話番号\n")
        for i in range(100_000):
            email = f"person{i % 95_000}@import{i % 95_000 % 700}.example"  # 5,000 duplicates within the file
            fh.write(f"株式会社インポート{i % 3000},姓{i},{email},03-{1000 + i % 9000}-{1000 + i % 8999}\n")
    env = {**os.environ, "DATABASE_URL": url, "MAILWIDGET_DATA_DIR": str(tmp)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "widget_api.cli", "import-leads", str(csv_path), "--user", "admin@bench.example", "--org", str(org_id), "--row-by-row"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    imported = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"== {db}: {leads:,} leads seeded in {seeded:.1f} s")
    print(f"bulk add 100,000 leads to a campaign: set-based {bulk:.2f} s (median of {', '.join(f'{r:.2f}' for r in runs)}), row-by-row {naive:.2f} s (10,000 measured, scaled; {naive / bulk:.1f}x); report: {sum(1 for v in report.values() if v == 'added'):,} added")
    print(f"custom view over {leads:,} leads (company key = K42, newest first), first page: p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms, {len(rows)} rows of {total}")
    print(f"CSV import of 100,000 rows (5,000 duplicates in the file): {imported:.1f} s, peak RSS of the importing process {peak_mb:.0f} MB -> {result.stdout.strip()}")
    if result.returncode not in (0, 1):
        print(result.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--leads", type=int, default=1_000_000)
    args = parser.parse_args()
    from tests.servers.postgres import bench_databases

    for label, url in bench_databases(args.db, "crm_bench"):
        run(label, url, args.leads)


if __name__ == "__main__":
    main()
