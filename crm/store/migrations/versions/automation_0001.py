"""automatic mail: templates, workflow rules, web forms

Revision ID: automation_0001
Revises: 0001_core
"""

from alembic import op
import sqlalchemy as sa


revision = 'automation_0001'
down_revision = '0001_core'
branch_labels = ('automation',)
depends_on = None


def upgrade() -> None:
    op.create_table('mail_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('text_body', sa.Text(), nullable=False),
    sa.Column('html_body', sa.Text(), nullable=True),
    sa.Column('charset', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_mail_templates_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_templates')),
    sa.UniqueConstraint('organisation_id', 'name', name=op.f('uq_mail_templates_organisation_id_name'))
    )
    with op.batch_alter_table('mail_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_templates_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('web_forms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('on_duplicate', sa.String(length=8), nullable=False),
    sa.Column('secret_encrypted', sa.LargeBinary(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_web_forms_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_web_forms_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['mail_templates.id'], name=op.f('fk_web_forms_template_id_mail_templates'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_forms')),
    sa.UniqueConstraint('key', name=op.f('uq_web_forms_key'))
    )
    with op.batch_alter_table('web_forms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_forms_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_forms_template_id'), ['template_id'], unique=False)

    op.create_table('workflow_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=True),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('delay_minutes', sa.Integer(), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_workflow_rules_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_workflow_rules_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['mail_templates.id'], name=op.f('fk_workflow_rules_template_id_mail_templates'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_rules')),
    sa.UniqueConstraint('organisation_id', 'name', name=op.f('uq_workflow_rules_organisation_id_name'))
    )
    with op.batch_alter_table('workflow_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_rules_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_rules_template_id'), ['template_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('workflow_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_rules_template_id'))
        batch_op.drop_index(batch_op.f('ix_workflow_rules_organisation_id'))

    op.drop_table('workflow_rules')
    with op.batch_alter_table('web_forms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_forms_template_id'))
        batch_op.drop_index(batch_op.f('ix_web_forms_organisation_id'))

    op.drop_table('web_forms')
    with op.batch_alter_table('mail_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_templates_organisation_id'))

    op.drop_table('mail_templates')
