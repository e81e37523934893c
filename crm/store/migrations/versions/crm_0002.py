"""campaign members keyed by (campaign, lead); their status referenced with the campaign

Revision ID: crm_0002
Revises: crm_0001

The member table is rebuilt (its primary key changes, which no ALTER does on SQLite): rows
are copied aside, the tables recreated, the rows copied back; the history follows its member
by (campaign, lead) instead of the surrogate member id.
"""

from alembic import op
import sqlalchemy as sa


revision = 'crm_0002'
down_revision = 'crm_0001'
branch_labels = None
depends_on = None


def _history_table(member_columns: list[sa.Column], member_fk: sa.ForeignKeyConstraint, index: tuple[str, list[str]]) -> None:
    op.create_table('campaign_member_history',
    sa.Column('id', sa.Integer(), nullable=False),
    *member_columns,
    sa.Column('from_status_id', sa.Integer(), nullable=True),
    sa.Column('to_status_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    member_fk,
    sa.ForeignKeyConstraint(['from_status_id'], ['campaign_statuses.id'], name=op.f('fk_campaign_member_history_from_status_id_campaign_statuses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['to_status_id'], ['campaign_statuses.id'], name=op.f('fk_campaign_member_history_to_status_id_campaign_statuses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_campaign_member_history_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_member_history'))
    )
    op.create_index(index[0], 'campaign_member_history', index[1], unique=False)


def upgrade() -> None:
    op.execute("CREATE TABLE _members_copy AS SELECT campaign_id, lead_id, status_id, added_by_id, added_at FROM campaign_members")
    op.execute(
        "CREATE TABLE _history_copy AS SELECT h.id, m.campaign_id, m.lead_id, h.from_status_id, h.to_status_id, h.user_id, h.changed_at"
        " FROM campaign_member_history h JOIN campaign_members m ON m.id = h.member_id"
    )
    op.drop_table('campaign_member_history')
    op.drop_table('campaign_members')
    with op.batch_alter_table('campaign_statuses', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_campaign_statuses_campaign_id_id'), ['campaign_id', 'id'])

    op.create_table('campaign_members',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('status_id', sa.Integer(), nullable=False),
    sa.Column('added_by_id', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id', 'status_id'], ['campaign_statuses.campaign_id', 'campaign_statuses.id'], name=op.f('fk_campaign_members_campaign_id_campaign_statuses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_campaign_members_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'lead_id', name=op.f('pk_campaign_members'))
    )
    op.create_index(op.f('ix_campaign_members_lead_id'), 'campaign_members', ['lead_id'], unique=False)
    _history_table(
        [sa.Column('campaign_id', sa.Integer(), nullable=False), sa.Column('lead_id', sa.Integer(), nullable=False)],
        sa.ForeignKeyConstraint(['campaign_id', 'lead_id'], ['campaign_members.campaign_id', 'campaign_members.lead_id'], name=op.f('fk_campaign_member_history_campaign_id_campaign_members'), ondelete='CASCADE'),
        ('ix_campaign_member_history_member', ['campaign_id', 'lead_id']),
    )
    op.execute("INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_by_id, added_at) SELECT campaign_id, lead_id, status_id, added_by_id, added_at FROM _members_copy")
    op.execute(
        "INSERT INTO campaign_member_history (campaign_id, lead_id, from_status_id, to_status_id, user_id, changed_at)"
        " SELECT campaign_id, lead_id, from_status_id, to_status_id, user_id, changed_at FROM _history_copy ORDER BY id"
    )
    op.drop_table('_history_copy')
    op.drop_table('_members_copy')


def downgrade() -> None:
    op.execute("CREATE TABLE _members_copy AS SELECT campaign_id, lead_id, status_id, added_by_id, added_at FROM campaign_members")
    op.execute("CREATE TABLE _history_copy AS SELECT id, campaign_id, lead_id, from_status_id, to_status_id, user_id, changed_at FROM campaign_member_history")
    op.drop_table('campaign_member_history')
    op.drop_table('campaign_members')
    with op.batch_alter_table('campaign_statuses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_campaign_statuses_campaign_id_id'), type_='unique')

    op.create_table('campaign_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('status_id', sa.Integer(), nullable=False),
    sa.Column('added_by_id', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['added_by_id'], ['users.id'], name=op.f('fk_campaign_members_added_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_members_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_campaign_members_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['campaign_statuses.id'], name=op.f('fk_campaign_members_status_id_campaign_statuses'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_members')),
    sa.UniqueConstraint('campaign_id', 'lead_id', name=op.f('uq_campaign_members_campaign_id_lead_id'))
    )
    op.create_index(op.f('ix_campaign_members_lead_id'), 'campaign_members', ['lead_id'], unique=False)
    op.create_index(op.f('ix_campaign_members_status_id'), 'campaign_members', ['status_id'], unique=False)
    _history_table(
        [sa.Column('member_id', sa.Integer(), nullable=False)],
        sa.ForeignKeyConstraint(['member_id'], ['campaign_members.id'], name=op.f('fk_campaign_member_history_member_id_campaign_members'), ondelete='CASCADE'),
        (op.f('ix_campaign_member_history_member_id'), ['member_id']),
    )
    op.execute(
        "INSERT INTO campaign_members (campaign_id, lead_id, status_id, added_by_id, added_at)"
        " SELECT campaign_id, lead_id, status_id, added_by_id, added_at FROM _members_copy ORDER BY added_at, lead_id"
    )
    op.execute(
        "INSERT INTO campaign_member_history (member_id, from_status_id, to_status_id, user_id, changed_at)"
        " SELECT m.id, h.from_status_id, h.to_status_id, h.user_id, h.changed_at FROM _history_copy h"
        " JOIN campaign_members m ON m.campaign_id = h.campaign_id AND m.lead_id = h.lead_id ORDER BY h.id"
    )
    op.drop_table('_history_copy')
    op.drop_table('_members_copy')
