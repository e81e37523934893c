"""on PostgreSQL, campaign members' references checked once per statement

Revision ID: crm_0004
Revises: crm_0003

PostgreSQL checks a declarative foreign key with one trigger call per inserted row: adding
100,000 leads to a campaign made 200,000 such calls, most of its time as EXPLAIN ANALYZE
counts it (bench/crm.py: 2.24 s before, 1.85 s after, the same hour). Here the two
references of campaign_members (its lead; its status together with its campaign) are
checked by statement-level triggers over the statement's transition table instead: one
query per statement (a primary-key probe per member, without a trigger call each), which
locks the referenced rows FOR KEY SHARE exactly as a foreign key's check does, so a
concurrent delete waits or the insert fails. The cascades the foreign keys gave (a deleted
lead or status takes its members along) and their refusal to change a referenced key are
triggers too.

Those cascades see members committed by others only under READ COMMITTED, where each
statement takes a fresh snapshot (the application never runs anything else); under the
stricter levels they could miss a member added concurrently, so deleting leads or statuses
there is refused rather than risk an orphan.

The trigger functions run without JIT: their plans are kept, and a kept plan costed for
100,000 rows was JIT-compiled again on every later call (47 ms for a one-member add).

SQLite keeps the declarative foreign keys: its checks are cheap (bulk add 0.5–0.9 s).
"""

from alembic import op


revision = 'crm_0004'
down_revision = 'crm_0003'
branch_labels = None
depends_on = None

FOREIGN_KEYS = {
    'fk_campaign_members_lead_id_leads': "FOREIGN KEY (lead_id) REFERENCES leads (id) ON DELETE CASCADE",
    'fk_campaign_members_campaign_id_campaign_statuses': (
        "FOREIGN KEY (campaign_id, status_id) REFERENCES campaign_statuses (campaign_id, id) ON DELETE CASCADE"
    ),
}

CHECK_MEMBERS = """
CREATE FUNCTION campaign_members_check_references() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    total bigint;
    found bigint;
BEGIN
    SELECT count(*) INTO total FROM new_members;
    -- Every member whose lead exists counts once. The function keeps its plans for the
    -- session's later statements, sized for the first statement's rows: a lateral probe of
    -- the primary key per member suits one member as well as 100,000, where a join planned
    -- for 100,000 would scan every lead for the next single add.
    SELECT count(*) INTO found
      FROM new_members n, LATERAL (SELECT 1 FROM leads l WHERE l.id = n.lead_id FOR KEY SHARE) checked;
    IF found < total THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "campaign_members" violates foreign key constraint "fk_campaign_members_lead_id_leads"',
            DETAIL = 'A member''s lead does not exist.';
    END IF;
    -- A bulk add has one (campaign, status) pair: group first, lock each status once.
    SELECT coalesce(sum(checked.members), 0) INTO found
      FROM (SELECT pairs.members
              FROM (SELECT campaign_id, status_id, count(*) AS members FROM new_members GROUP BY campaign_id, status_id) pairs
              JOIN campaign_statuses s ON s.campaign_id = pairs.campaign_id AND s.id = pairs.status_id
               FOR KEY SHARE OF s) checked;
    IF found < total THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "campaign_members" violates foreign key constraint "fk_campaign_members_campaign_id_campaign_statuses"',
            DETAIL = 'A member''s status is not one of its campaign''s.';
    END IF;
    RETURN NULL;
END $$
"""

CASCADE = """
CREATE FUNCTION campaign_members_cascade_{name}() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE feature_not_supported USING
            MESSAGE = 'deleting {table} needs READ COMMITTED isolation, which lets the cascade to campaign_members see every member';
    END IF;
    -- Planned for each statement's own size (EXECUTE): one lead's members by index, a whole
    -- organisation's by a join, neither with the plan of whichever came first.
    EXECUTE 'DELETE FROM campaign_members m USING gone WHERE {match}';
    RETURN NULL;
END $$
"""

KEEP_KEYS = """
CREATE FUNCTION campaign_members_keep_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('the key of a %s row cannot change: campaign members refer to it', TG_TABLE_NAME);
END $$
"""

# (table, trigger, definition). A declared foreign key also refused changing a referenced
# key; ids never change here, so any change of one is refused, at no cost to other updates.
TRIGGERS = [
    ("campaign_members", "campaign_members_inserted",
     "AFTER INSERT ON campaign_members REFERENCING NEW TABLE AS new_members FOR EACH STATEMENT EXECUTE FUNCTION campaign_members_check_references()"),
    ("campaign_members", "campaign_members_updated",
     "AFTER UPDATE ON campaign_members REFERENCING NEW TABLE AS new_members FOR EACH STATEMENT EXECUTE FUNCTION campaign_members_check_references()"),
    ("leads", "leads_deleted",
     "AFTER DELETE ON leads REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION campaign_members_cascade_leads()"),
    ("campaign_statuses", "campaign_statuses_deleted",
     "AFTER DELETE ON campaign_statuses REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION campaign_members_cascade_statuses()"),
    ("leads", "leads_id_kept",
     "BEFORE UPDATE OF id ON leads FOR EACH ROW WHEN (NEW.id <> OLD.id) EXECUTE FUNCTION campaign_members_keep_keys()"),
    ("campaign_statuses", "campaign_statuses_key_kept",
     "BEFORE UPDATE OF campaign_id, id ON campaign_statuses FOR EACH ROW"
     " WHEN (NEW.campaign_id <> OLD.campaign_id OR NEW.id <> OLD.id) EXECUTE FUNCTION campaign_members_keep_keys()"),
]
FUNCTIONS = ('campaign_members_check_references', 'campaign_members_cascade_leads', 'campaign_members_cascade_statuses', 'campaign_members_keep_keys')


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    if not _postgres():
        return
    for name in FOREIGN_KEYS:
        op.drop_constraint(name, 'campaign_members', type_='foreignkey')
    op.execute(CHECK_MEMBERS)
    op.execute(CASCADE.format(name='leads', table='leads', match='m.lead_id = gone.id'))
    op.execute(CASCADE.format(name='statuses', table='campaign statuses', match='m.campaign_id = gone.campaign_id AND m.status_id = gone.id'))
    op.execute(KEEP_KEYS)
    for _table, trigger, definition in TRIGGERS:
        op.execute(f"CREATE TRIGGER {trigger} {definition}")


def downgrade() -> None:
    if not _postgres():
        return
    for table, trigger, _definition in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
    for name, definition in FOREIGN_KEYS.items():
        op.execute(f"ALTER TABLE campaign_members ADD CONSTRAINT {name} {definition}")
