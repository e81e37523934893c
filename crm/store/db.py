"""Engine and session factory: the only place that knows how to reach the database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, Engine, Text, any_, bindparam, cast, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from crm.domain.errors import InvalidInput

MIGRATIONS = Path(__file__).with_name("migrations")
# The execution option that marks a connection of read-only sessions (make_session_factory).
READ_ONLY = "mailwidget_read_only"
T = TypeVar("T")
READING_VERBS = frozenset({"SELECT", "WITH", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "EXPLAIN", "SET", "SHOW"})


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, _executemany):  # type: ignore[no-untyped-def]
    """No text with a NUL character is ever stored: PostgreSQL cannot hold one (the driver
    fails mid-request), and in SQLite it would break every export. Checked here, where every
    statement of every writer passes, it is the user's bad input (400), not a 500."""
    rows = parameters if isinstance(parameters, (list, tuple)) and parameters and isinstance(parameters[0], (dict, list, tuple)) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row or ()
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise InvalidInput("text with a NUL character cannot be stored", code="nul_character")


def _read_only_reads(conn, _cursor, statement, _parameters, _context, _executemany):  # type: ignore[no-untyped-def]
    """A write inside a read-only session (a deferred transaction on SQLite) is a race with
    the other writers waiting to happen ("database is locked" when one committed first):
    refused always, so the first test of a route that writes through a read-only session
    shows it (that route takes a writing session instead)."""
    if conn.get_execution_options().get(READ_ONLY):
        verb = statement.lstrip()[:9].split(None, 1)[0].upper() if statement.strip() else ""
        if verb not in READING_VERBS:
            raise ReadOnlySession(f"a read-only session cannot write ({verb})")


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """An engine for SQLite (the embedded default) or PostgreSQL.

    SQLite gets WAL and a busy timeout so that concurrent saves wait for the writer instead of
    failing with "database is locked", and foreign keys on (off by default in SQLite).
    Errors never carry the statement's parameters (`hide_parameters`): they are user data,
    and an error's text may reach a log.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # We emit BEGIN ourselves (below): pysqlite's own transaction handling breaks
            # SAVEPOINT, which the save flow relies on (SQLAlchemy's pysqlite notes).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the database; a power cut may lose the last
            # commits, not what was committed before the last checkpoint.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A writing transaction takes the write lock up front (IMMEDIATE): a deferred one
            # that read first fails at once with "database is locked" when it later writes
            # after another writer committed; this one waits its turn (busy_timeout) instead.
            # A read-only one (GET requests, authentication) begins deferred: in WAL mode it
            # reads its snapshot beside a writer and never waits for one.
            if conn.get_execution_options().get(READ_ONLY):
                # Straight to the driver: SQLAlchemy's execution of a statement (its context,
                # the cursor events) cost more CPU than SQLite's BEGIN, twice per draft. A
                # deferred BEGIN takes no lock and reads nothing, so it has no error to wrap.
                conn.connection.driver_connection.execute("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        engine = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    event.listen(engine, "before_cursor_execute", _read_only_reads)
    return engine


def once_more_if_disconnected(session: Session | Connection, read: Callable[[], T]) -> T:
    """`read()`, and once more if the server had cut its pooled connection (a PostgreSQL
    restart since): SQLAlchemy invalidated the pool on that error, so the second try runs on
    a fresh connection. For idempotent reads only, at the start of a transaction (the
    token check of every request: after a restart its first request is served, not 503)."""
    try:
        return read()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        session.rollback()
        return read()


class ReadOnlySession(RuntimeError):
    """A statement that writes was sent through a read-only session: a programming error."""


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`; read-only ones never wait for a writer on SQLite (their
    transactions begin deferred) and refuse to write."""
    return sessionmaker(read_only_engine(engine) if read_only else engine, expire_on_commit=False)


def read_only_engine(engine: Engine) -> Engine:
    """`engine` for reading only: its connections are those of read-only sessions (deferred
    BEGIN on SQLite, every write refused)."""
    return engine.execution_options(**{READ_ONLY: True})


def connection_of(db: Session | Connection) -> Connection:
    """The connection a read runs on: a session's (its transaction), or the connection itself.
    Reads that run on every request take a plain read-only connection (Runtime.read_connection):
    a Session's own bookkeeping (its transaction object, its close) costs them more CPU than
    a statement."""
    return db.connection() if isinstance(db, Session) else db


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema up to date: every feature's branch (`heads`), idempotently."""
    from alembic import command

    command.upgrade(alembic_config(url), "heads")


def refresh_statistics(session: Session) -> None:
    """Keep the query planner's statistics current after bulk changes. SQLite has none until
    ANALYZE runs, and without them it walks a million leads by creation date instead of
    starting from the handful a custom view selects; PostgreSQL's autovacuum catches up
    later, so an explicit ANALYZE makes a fresh import fast at once."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        has_stats = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar()
        conn.exec_driver_sql("PRAGMA optimize" if has_stats else "ANALYZE")
    else:
        conn.exec_driver_sql("ANALYZE leads, custom_values, campaign_members, lead_unique_keys")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: ColumnElement[int], ids: list[int]) -> ColumnElement[bool]:
    """`column IN ids`, as one array parameter on PostgreSQL (`= ANY(:ids)`): a list of
    thousands of separate parameters costs PostgreSQL far more to parse and plan than the
    work itself. The array goes as its text form, joined here in one go: handed a list,
    psycopg checks every element for quoting (0.2 s for 100,000 ids). SQLite takes the plain
    IN list."""
    if is_postgres(session):
        text_form = "{" + ",".join(map(str, ids)) + "}"  # a bound parameter: at worst a failed cast
        return column == any_(cast(bindparam(None, text_form, type_=Text), ARRAY(BigInteger)))
    return column.in_(ids)


def id_chunks(session: Session, ids: list[int]) -> list[list[int]]:
    """The ids in as few pieces as `among` can take: all at once on PostgreSQL (one array
    parameter, one scan), 20,000 at a time on SQLite (a parameter each; its limit is 32,766)."""
    size = len(ids) if is_postgres(session) else 20_000
    return [ids[i : i + size] for i in range(0, len(ids), max(size, 1))]


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's own INSERT construct, which knows ON CONFLICT (both SQLite and PostgreSQL
    have it; the generic one does not)."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
