"""Leases that keep two processes from doing the same work at once: a PostgreSQL advisory
lock, held by one connection for as long as the work runs. The server releases it when that
connection ends for any reason, so a worker killed mid-scan (SIGKILL) leaves no stale lease
behind. SQLite serves one process (the embedded mode): every lease is granted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

# The first key of the two-key advisory lock: the kind of work (the second is the row id),
# so the leases of different kinds never collide.
MAILBOX_SCAN = 1_801


@contextmanager
def lease(engine: Engine, kind: int, key: int) -> Iterator[bool]:
    """True when this process holds the lease of (kind, key) for the block; False at once
    when another holds it (the caller skips the work, it is being done)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:kind, :key)"), {"kind": kind, "key": key}).scalar())
        conn.commit()  # the lock is the session's, not the transaction's: no transaction held open
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:kind, :key)"), {"kind": kind, "key": key})
                conn.commit()
