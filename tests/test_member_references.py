"""A campaign member always has its lead and one of its own campaign's statuses.

SQLite declares both references as foreign keys; PostgreSQL checks them with statement-level
triggers (migration crm_0004). The same tests hold for both, plus, on PostgreSQL, the races
a foreign key's row locks used to settle: a lead deleted while a bulk add is choosing it,
and a bulk add holding a lead that is being deleted.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm.domain.principal import Principal
from crm.services import campaigns
from crm.store.campaigns import CampaignMember, MemberStatusChange
from crm.store.models import Lead

POSTGRES = os.environ.get("MAILWIDGET_TEST_DB") == "postgres"
postgres_only = pytest.mark.skipif(not POSTGRES, reason="the races are PostgreSQL's (SQLite has one writer at a time)")


@pytest.fixture()
def setup(runtime, member):  # type: ignore[no-untyped-def]
    """Two campaigns and three leads of the member's organisation."""
    principal = Principal(member.id, member.organisation_id, member.email, "member")
    now = datetime.now(UTC)
    with runtime.sessions.begin() as s:
        spring = campaigns.create_campaign(s, principal, "spring").id
        autumn = campaigns.create_campaign(s, principal, "autumn").id
        leads = [Lead(organisation_id=member.organisation_id, last_name=f"L{i}", source="api", status="open", created_at=now, updated_at=now) for i in range(3)]
        s.add_all(leads)
        s.flush()
        ids = [lead.id for lead in leads]
        statuses = {c: [st.id for st in campaigns.statuses(s, c)] for c in (spring, autumn)}
    return principal, spring, autumn, ids, statuses


def _insert_member(engine: Engine, campaign_id: int, lead_id: int, status_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_at) VALUES (:c, :l, :s, :t)"),
            {"c": campaign_id, "l": lead_id, "s": status_id, "t": datetime.now(UTC)},
        )


def _members(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [(r.campaign_id, r.lead_id) for r in conn.execute(select(CampaignMember.campaign_id, CampaignMember.lead_id).order_by(CampaignMember.campaign_id, CampaignMember.lead_id))]


def test_a_member_needs_an_existing_lead_and_a_status_of_its_own_campaign(engine: Engine, setup) -> None:  # type: ignore[no-untyped-def]
    _principal, spring, autumn, ids, statuses = setup
    with pytest.raises(IntegrityError, match="(?i)foreign key"):
        _insert_member(engine, spring, max(ids) + 1000, statuses[spring][0])
    with pytest.raises(IntegrityError, match="(?i)foreign key"):
        _insert_member(engine, spring, ids[0], statuses[autumn][0])
    # Several rows in one statement: one bad row refuses the statement, the good ones too.
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(
            text("INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_at) VALUES (:c, :a, :s, :t), (:c, :b, :s, :t)"),
            {"c": spring, "a": ids[0], "b": max(ids) + 1000, "s": statuses[spring][0], "t": datetime.now(UTC)},
        )
    assert _members(engine) == []
    # Changing a member's status to another campaign's is refused the same way.
    _insert_member(engine, spring, ids[0], statuses[spring][0])
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(text("UPDATE campaign_members SET status_id = :s WHERE lead_id = :l"), {"s": statuses[autumn][1], "l": ids[0]})
    with engine.connect() as conn:
        assert conn.scalar(select(CampaignMember.status_id)) == statuses[spring][0]
    # Nor may the lead's or the status's key change under the member.
    for update in ("UPDATE leads SET id = id + 100000 WHERE id = :l", "UPDATE campaign_statuses SET id = id + 100000 WHERE id = :s"):
        with pytest.raises(IntegrityError, match="(?i)foreign key|members refer"), engine.begin() as conn:
            conn.execute(text(update), {"l": ids[0], "s": statuses[spring][0]})
    assert _members(engine) == [(spring, ids[0])]


def test_deleting_a_lead_or_a_campaign_takes_its_members_and_their_history(engine: Engine, runtime, setup) -> None:  # type: ignore[no-untyped-def]
    principal, spring, autumn, ids, _statuses = setup
    with runtime.sessions.begin() as s:
        campaigns.add_leads(s, principal, spring, ids)
        campaigns.add_leads(s, principal, autumn, ids)
        campaigns.set_member_status(s, principal, spring, ids[0], "反応あり")
    with runtime.sessions.begin() as s:
        s.execute(Lead.__table__.delete().where(Lead.id.in_(ids[:2])))  # two at once: one statement
    assert _members(engine) == [(spring, ids[2]), (autumn, ids[2])]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(MemberStatusChange)) == 0
        s.execute(text("DELETE FROM campaigns WHERE id = :c"), {"c": spring})
        s.commit()
    assert _members(engine) == [(autumn, ids[2])]


def _wait_until_blocked(engine: Engine, what: str) -> None:
    """Until some other session of this database waits for a lock (with a deadline)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} never waited for the lock")


@postgres_only
def test_a_lead_deleted_while_a_bulk_add_chooses_it_is_reported_not_found(engine: Engine, runtime, setup) -> None:  # type: ignore[no-untyped-def]
    principal, spring, _autumn, ids, _statuses = setup
    deleting = engine.connect()
    deleting.execute(text("DELETE FROM leads WHERE id = :l"), {"l": ids[0]})  # not committed yet

    def add() -> object:
        with runtime.sessions.begin() as s:
            return campaigns.add_leads(s, principal, spring, ids)

    with ThreadPoolExecutor(1) as pool:
        adding = pool.submit(add)
        try:
            _wait_until_blocked(engine, "the bulk add")  # its check waits to lock the lead being deleted
        finally:
            deleting.commit()  # (also when the wait failed: the thread must not hang on the lock)
            deleting.close()
        assert adding.result(30) == {ids[0]: "not_found", ids[1]: "added", ids[2]: "added"}
    assert _members(engine) == [(spring, ids[1]), (spring, ids[2])]


@postgres_only
def test_a_lead_deleted_while_a_bulk_add_holds_it_takes_the_new_member_along(engine: Engine, runtime, setup) -> None:  # type: ignore[no-untyped-def]
    principal, spring, _autumn, ids, _statuses = setup
    with runtime.sessions() as adding:
        assert campaigns.add_leads(adding, principal, spring, ids) == dict.fromkeys(ids, "added")

        def delete() -> object:
            with engine.begin() as conn:
                return conn.execute(text("DELETE FROM leads WHERE id = :l"), {"l": ids[0]}).rowcount

        with ThreadPoolExecutor(1) as pool:
            deleted = pool.submit(delete)
            try:
                _wait_until_blocked(engine, "the delete")  # the added member's lead is locked FOR KEY SHARE
            finally:
                adding.commit()
            assert deleted.result(30) == 1
    assert _members(engine) == [(spring, ids[1]), (spring, ids[2])]


@postgres_only
def test_deleting_leads_outside_read_committed_is_refused_and_changes_nothing(engine: Engine, runtime, setup) -> None:  # type: ignore[no-untyped-def]
    principal, spring, _autumn, ids, _statuses = setup
    with runtime.sessions.begin() as s:
        campaigns.add_leads(s, principal, spring, ids)
    with pytest.raises(DBAPIError, match="READ COMMITTED"), engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        conn.execute(text("DELETE FROM leads WHERE id = :l"), {"l": ids[0]})
    assert _members(engine) == [(spring, lead) for lead in ids]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_(ids))) == 3
