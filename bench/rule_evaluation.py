"""Workflow rules over a CSV import: 10,000 new leads and one rule (conditions on a standard
and a custom field, a template with merge fields) evaluated and queued in the outbox, the
way an import does it (crm.services.rules.on_leads_created over the whole batch: one SQL
query per rule), beside the one-lead-at-a-time way (the same call per lead, as a hook on
each insert would do), on SQLite and PostgreSQL (a throwaway cluster). The evaluation
(conditions and merge fields, nothing queued) is timed on its own too.

    .venv/bin/python bench/rule_evaluation.py [--db sqlite|postgres|both] [--leads 10000] [--sample 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from crm.domain.filters import FILTER  # noqa: E402
from crm.domain.principal import Principal  # noqa: E402
from crm.services import custom_fields, organisations, outbox, rules, templates  # noqa: E402
from crm.services.secrets import SecretBox  # noqa: E402
from crm.store.automation import WorkflowRule  # noqa: E402
from crm.store.base import utcnow  # noqa: E402
from crm.store.custom_fields import CustomValue  # noqa: E402
from crm.store.db import make_engine, make_session_factory, migrate, refresh_statistics  # noqa: E402
from crm.store.models import Lead  # noqa: E402
from crm.store.outbox import OutboxMail  # noqa: E402

CONDITIONS = FILTER.validate_python({"op": "and", "conditions": [{"field": "company", "op": "contains", "value": "株式会社"}, {"field": "custom:plan", "op": "in", "value": ["gold", "silver"]}]})


def setup(sessions, box: SecretBox, name: str, count: int) -> tuple[Principal, list[int], int]:  # type: ignore[no-untyped-def]
    """An organisation with SMTP settings, a template, one rule and `count` imported leads
    (9 in 10 match the rule)."""
    with sessions.begin() as s:
        org = organisations.create_organisation(s, name)
        user = organisations.create_user(s, org.id, f"admin@{name.lower()}.example", role="admin")
        principal = Principal(user.id, org.id, user.email, "admin")
        outbox.save_smtp_settings(s, org.id, box, host="127.0.0.1", port=2525, security="none", from_address="info@acme.example", public_url="https://crm.acme.example")
        plan = custom_fields.define(s, principal, "plan", "プラン", "picklist", options=["gold", "silver", "free"])
        template = templates.create_template(
            s, principal, {"name": "welcome", "subject": "{{lead.last_name}}様 ご登録ありがとうございます", "text_body": "{{lead.company}}\n{{lead.last_name}}様\n{{lead.custom.plan}} プランへようこそ。",
                           "html_body": "<p>{{lead.company}}<br>{{lead.last_name}}様</p>"},
        )
        rule = rules.create_rule(s, principal, {"name": "welcome", "sources": ["csv_import"], "template_id": template.id, "conditions": CONDITIONS})
        now = utcnow()
        rows = [
            {"organisation_id": org.id, "owner_id": user.id, "last_name": f"山田{i}", "email": f"lead{i}@{name.lower()}.example", "email_norm": f"lead{i}@{name.lower()}.example",
             "company": f"会社{i % 500} 株式会社" if i % 20 else f"Company {i}", "source": "csv_import", "status": "open", "created_at": now, "updated_at": now}
            for i in range(count)
        ]
        ids = list(s.scalars(insert(Lead).returning(Lead.id, sort_by_parameter_order=True), rows))
        s.execute(insert(CustomValue), [{"lead_id": lid, "field_id": plan.id, "text_value": ("gold", "silver", "free", "gold", "silver", "gold", "silver", "gold", "silver", "gold", "silver", "gold", "silver", "gold", "silver", "gold", "silver", "gold", "silver", "free")[i % 20]} for i, lid in enumerate(ids)])
        refresh_statistics(s)
        return principal, ids, rule.id


def queued(sessions, rule_id: int) -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "rule", OutboxMail.source_id == rule_id, OutboxMail.status == "queued")) or 0


def run(db: str, url: str, count: int, sample: int) -> None:
    migrate(url)
    sessions = make_session_factory(make_engine(url))
    box = SecretBox([Fernet.generate_key().decode()])
    batch_principal, batch_ids, batch_rule = setup(sessions, box, "Batch", count)
    naive_principal, naive_ids, naive_rule = setup(sessions, box, "Naive", count)

    # Evaluation alone (conditions in SQL, the template rendered per match), nothing queued.
    with sessions() as s:
        rule = s.get(WorkflowRule, batch_rule)
        start = time.perf_counter()
        planned = rules.plan(s, batch_principal, rule, batch_ids)
        evaluation = time.perf_counter() - start
        start = time.perf_counter()
        one_by_one = sum(len(rules.plan(s, batch_principal, rule, [lead_id]).mails) for lead_id in batch_ids)
        evaluation_naive = time.perf_counter() - start
    assert one_by_one == len(planned.mails)

    # Evaluation and queueing, as an import runs it.
    start = time.perf_counter()
    with sessions.begin() as s:
        report = rules.on_leads_created(s, batch_principal, batch_ids, "csv_import")
    batch = time.perf_counter() - start

    # The one-lead-at-a-time way on the first `sample` leads (all 10,000 take minutes).
    start = time.perf_counter()
    with sessions.begin() as s:
        for lead_id in naive_ids[:sample]:
            rules.on_leads_created(s, naive_principal, [lead_id], "csv_import")
    naive = (time.perf_counter() - start) * count / min(sample, count)

    mailed = queued(sessions, batch_rule)
    assert mailed == len(planned.mails), (mailed, len(planned.mails))
    print(f"{db}: {count:,} imported leads, one rule: {mailed:,} mails queued {report.per_rule[batch_rule]}")
    print(f"  evaluation (conditions + merge), batch:      {evaluation:6.2f} s   one lead at a time: {evaluation_naive:6.2f} s   ratio {evaluation_naive / evaluation:.1f}x")
    print(f"  evaluation + queueing (outbox), batch:       {batch:6.2f} s   one lead at a time: {naive:6.2f} s (from {min(sample, count):,} leads)   ratio {naive / batch:.1f}x")
    print(f"  of which queueing: {batch - evaluation:.2f} s ({(batch - evaluation) / max(mailed, 1) * 1000:.2f} ms a mail)   target <= 2 s: {'met' if batch <= 2 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=1_000, help="leads the one-at-a-time way runs on (scaled up to --leads)")
    args = parser.parse_args()
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.leads, args.sample)
    if args.db in ("postgres", "both"):
        from tests.servers.postgres import PostgresCluster

        cluster = PostgresCluster({"shared_buffers": "128MB"}).start()  # PostgreSQL's default, as bench/crm.py
        try:
            run("PostgreSQL", cluster.create_database("rules_bench"), args.leads, args.sample)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
