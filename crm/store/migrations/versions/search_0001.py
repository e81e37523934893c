"""search keys of leads, contacts and accounts, backfilled

Revision ID: search_0001
Revises: 0001_core
"""

from alembic import op
import sqlalchemy as sa

# The domain's folding is stdlib-only and versioned with the code; a later change of it
# ships its own migration that recomputes the keys.
from crm.domain.search import MAX_KEY, person_texts, search_key


revision = 'search_0001'
down_revision = '0001_core'
branch_labels = ('search',)
depends_on = None

BATCH = 1000
TABLES = {
    'leads': ('first_name', 'last_name', 'company', 'email', 'phone', 'mobile'),
    'contacts': ('first_name', 'last_name', 'email', 'phone', 'mobile'),
    'accounts': ('name', 'website', 'email_domain'),
}


def _key(table: str, row: sa.Row) -> str:  # type: ignore[type-arg]
    r = row._mapping
    if table == 'leads':
        return search_key(person_texts(r['first_name'], r['last_name'], r['company'], r['email']), (r['phone'], r['mobile']))
    if table == 'contacts':
        return search_key(person_texts(r['first_name'], r['last_name'], r['email']), (r['phone'], r['mobile']))
    return search_key([r['name'], r['website'], r['email_domain']])


def upgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column('search_key', sa.String(length=MAX_KEY), nullable=True))
    bind = op.get_bind()
    for name, columns in TABLES.items():
        table = sa.table(name, sa.column('id', sa.Integer), sa.column('search_key', sa.String), *(sa.column(c, sa.String) for c in columns))
        last = 0
        while True:  # keyset batches: a table of a million rows is never held at once
            rows = bind.execute(sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(BATCH)).all()
            if not rows:
                break
            bind.execute(
                table.update().where(table.c.id == sa.bindparam('row_id')).values(search_key=sa.bindparam('key')),
                [{'row_id': r.id, 'key': _key(name, r)} for r in rows],
            )
            last = rows[-1].id


def downgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('search_key')
