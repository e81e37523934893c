"""web forms: the organisation's duplicate policy for submissions; forms inherit it

Revision ID: dupes_0001
Revises: 0001_core
Depends on: automation_0001 (the web_forms rows are renamed to the new policy names)
"""

from alembic import op
import sqlalchemy as sa


revision = 'dupes_0001'
down_revision = '0001_core'
branch_labels = ('dupes',)
depends_on = ('automation_0001',)


def upgrade() -> None:
    op.create_table('form_duplicate_settings',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('on_duplicate', sa.String(length=8), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_form_duplicate_settings_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('organisation_id', name=op.f('pk_form_duplicate_settings'))
    )
    # "merge" was every form's default, never a choice: it follows the organisation now
    # (whose default, "fill", does what "merge" did). "skip" was chosen: it stays, as "keep".
    op.execute("UPDATE web_forms SET on_duplicate = 'inherit' WHERE on_duplicate = 'merge'")
    op.execute("UPDATE web_forms SET on_duplicate = 'keep' WHERE on_duplicate = 'skip'")


def downgrade() -> None:
    op.execute("UPDATE web_forms SET on_duplicate = 'skip' WHERE on_duplicate = 'keep'")
    op.execute("UPDATE web_forms SET on_duplicate = 'merge' WHERE on_duplicate <> 'skip'")
    op.drop_table('form_duplicate_settings')
