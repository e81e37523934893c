"""mailbox scan leases: one scan of a mailbox at a time across workers

Revision ID: lease_0001
Revises: 0001_core
"""

from alembic import op
import sqlalchemy as sa


revision = 'lease_0001'
down_revision = '0001_core'
branch_labels = ('lease',)
depends_on = None


def upgrade() -> None:
    op.create_table('mailbox_leases',
    sa.Column('mailbox_account_id', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_account_id'], ['mailbox_accounts.id'], name=op.f('fk_mailbox_leases_mailbox_account_id_mailbox_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_account_id', name=op.f('pk_mailbox_leases'))
    )


def downgrade() -> None:
    op.drop_table('mailbox_leases')
