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
# PostgreSQL only (crm.store.metadata leaves it out of the model comparison).
TRGM_INDEX = 'ix_{table}_search_trgm'
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
    if bind.dialect.name == 'postgresql' and _trigrams(bind):
        for name in TABLES:
            op.execute(f'CREATE INDEX {TRGM_INDEX.format(table=name)} ON {name} USING gin (search_key gin_trgm_ops)')


def _trigrams(bind: sa.Connection) -> bool:
    """pg_trgm, when the server has it and the migrating role may create it: a GIN trigram
    index answers the search's LIKE '%…%' without reading every row. Without it, search
    still works (a scan of the organisation's rows in SQL)."""
    if not bind.scalar(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")):
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS pg_trgm'))
    except sa.exc.DBAPIError:
        return False  # e.g. no privilege: an administrator may create it and migrate again
    return True


def downgrade() -> None:
    for name in TABLES:
        op.execute(f'DROP INDEX IF EXISTS {TRGM_INDEX.format(table=name)}')
    for name in TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('search_key')
