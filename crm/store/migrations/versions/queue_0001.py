"""job queue: procrastinate's schema (tables, PL/pgSQL functions, triggers) on PostgreSQL

Revision ID: queue_0001
Revises: 0001_core

On SQLite (the embedded mode) there is no queue: the same task functions run in the
process's own loops (widget_api.queue), so nothing is created there. A later procrastinate
release with schema changes gets a migration of this branch applying its migration files
(procrastinate/sql/migrations).
"""

from alembic import op


revision = 'queue_0001'
down_revision = '0001_core'
branch_labels = ('queue',)
depends_on = None

# Every object procrastinate's schema.sql creates is named procrastinate_*: the downgrade
# drops them by that prefix (functions, whose signatures change between versions, too).
DROP_ALL = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.f);
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%' AND t.typtype IN ('e', 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END $$;
"""


def _raw_execute(sql: str) -> None:
    # Through the driver's cursor without parameters: the schema holds % and : signs that
    # SQLAlchemy's text() or a parameter style would take for placeholders.
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    if op.get_bind().exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is not None:
        return  # applied by hand (procrastinate schema --apply) before this migration existed
    from procrastinate.schema import SchemaManager

    _raw_execute(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _raw_execute(DROP_ALL)
