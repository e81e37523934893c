"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from crm.store.db import alembic_config, migrate
from crm.store.metadata import compared_on, metadata


def test_migrated_database_matches_the_models(engine: Engine, database_url: str) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": compared_on(conn.dialect.name)})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    migrate(database_url)  # already at heads: a no-op, not an error


@pytest.fixture()
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the kind under test, for migrating step by step."""
    if os.environ.get("MAILWIDGET_TEST_DB") == "postgres":
        return str(request.getfixturevalue("postgres_cluster").create_database())
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def _members(conn) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    return [tuple(r) for r in conn.execute(text("SELECT campaign_id, lead_id, status_id, added_by_id FROM campaign_members ORDER BY campaign_id, lead_id"))]


def _history(conn) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    return [
        tuple(r)
        for r in conn.execute(
            text("SELECT m.campaign_id, m.lead_id, h.from_status_id, h.to_status_id, h.user_id FROM campaign_member_history h JOIN campaign_members m ON "
                 + ("m.id = h.member_id" if "member_id" in {c["name"] for c in inspect(conn).get_columns("campaign_member_history")} else "m.campaign_id = h.campaign_id AND m.lead_id = h.lead_id")
                 + " ORDER BY h.id")
        )
    ]


@pytest.mark.db
def test_campaign_members_survive_the_rekeying_both_ways(fresh_url: str) -> None:
    """crm_0002 rebuilds the member and history tables: every row comes through, up and down."""
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "crm_0001")
    engine = create_engine(fresh_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, time_zone, default_region, mail_domains, created_at) VALUES (1, 'o', 'Asia/Tokyo', 'JP', '[]', :t)"), {"t": now})
        conn.execute(text("INSERT INTO users (id, organisation_id, email, name, role, language, widget_enabled, created_at) VALUES (7, 1, 'u@x.example', 'u', 'member', 'ja', true, :t)"), {"t": now})
        for lead in (10, 11, 12):
            conn.execute(text("INSERT INTO leads (id, organisation_id, source, status, created_at, updated_at) VALUES (:i, 1, 'api', 'open', :t, :t)"), {"i": lead, "t": now})
        conn.execute(text("INSERT INTO campaigns (id, organisation_id, name, created_at) VALUES (3, 1, 'c', :t)"), {"t": now})
        for sid, name in ((30, 'sent'), (31, 'responded')):
            conn.execute(text("INSERT INTO campaign_statuses (id, campaign_id, name, is_default, responded, position) VALUES (:i, 3, :n, :d, :r, 0)"), {"i": sid, "n": name, "d": sid == 30, "r": sid == 31})
        for mid, lead, status in ((100, 10, 31), (101, 11, 30), (102, 12, 30)):
            conn.execute(text("INSERT INTO campaign_members (id, campaign_id, lead_id, status_id, added_by_id, added_at) VALUES (:m, 3, :l, :s, 7, :t)"), {"m": mid, "l": lead, "s": status, "t": now})
        conn.execute(text("INSERT INTO campaign_member_history (member_id, from_status_id, to_status_id, user_id, changed_at) VALUES (100, 30, 31, 7, :t)"), {"t": now})
        before = (_members(conn), _history(conn))
    assert before[0] == [(3, 10, 31, 7), (3, 11, 30, 7), (3, 12, 30, 7)]
    command.upgrade(cfg, "heads")
    with engine.connect() as conn:
        assert (_members(conn), _history(conn)) == before
        # The status must now be one of the member's own campaign.
        conn.execute(text("INSERT INTO campaigns (id, organisation_id, name, created_at) VALUES (4, 1, 'other', :t)"), {"t": now})
        conn.execute(text("INSERT INTO campaign_statuses (id, campaign_id, name, is_default, responded, position) VALUES (40, 4, 's', true, false, 0)"))
        conn.execute(text("INSERT INTO leads (id, organisation_id, source, status, created_at, updated_at) VALUES (13, 1, 'api', 'open', :t, :t)"), {"t": now})
        conn.execute(text("INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_at) VALUES (4, 13, 40, :t)"), {"t": now})
        if engine.dialect.name == "sqlite":
            conn.commit()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        with pytest.raises(IntegrityError, match="(?i)foreign key"):
            conn.execute(text("INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_at) VALUES (3, 13, 40, :t)"), {"t": now})
        conn.rollback()
        conn.execute(text("DELETE FROM campaign_members WHERE campaign_id = 4"))
        conn.commit()
    command.downgrade(cfg, "crm_0001")
    with engine.connect() as conn:
        assert (_members(conn), _history(conn)) == before
    engine.dispose()


@pytest.mark.db
def test_forms_follow_the_organisation_after_dupes_0001_and_back(fresh_url: str) -> None:
    """dupes_0001 renames the forms' policies: the old default "merge" inherits the
    organisation's setting (whose default does the same), a chosen "skip" is "keep"."""
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "automation_0001")
    engine = create_engine(fresh_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, time_zone, default_region, mail_domains, created_at) VALUES (1, 'o', 'Asia/Tokyo', 'JP', '[]', :t)"), {"t": now})
        for form_id, policy in ((1, "merge"), (2, "skip")):
            conn.execute(
                text("INSERT INTO web_forms (id, organisation_id, name, key, fields, language, on_duplicate, secret_encrypted, created_at) VALUES (:i, 1, 'f', :k, '[]', 'ja', :p, :s, :t)"),
                {"i": form_id, "k": f"key-{form_id}-xxxxxx", "p": policy, "s": b"x", "t": now},
            )
    policies = "SELECT on_duplicate FROM web_forms ORDER BY id"
    command.upgrade(cfg, "heads")
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text(policies))] == ["inherit", "keep"]
    command.downgrade(cfg, "dupes@-1")
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text(policies))] == ["merge", "skip"]
        assert "form_duplicate_settings" not in inspect(conn).get_table_names()
    engine.dispose()
