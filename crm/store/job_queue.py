"""Read-only views of the job queue's tables (procrastinate's schema, PostgreSQL only:
migration queue_0001), for `/ready` and `/metrics`. procrastinate itself owns every write."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class QueueState:
    todo: int  # jobs waiting whose time has come (a retry's backoff not yet over is not counted)
    doing: int
    failed: int  # retries exhausted: kept in the table, never silently gone
    oldest_todo_age_s: float | None  # the longest a due job has waited
    workers: int  # registered workers (procrastinate_workers rows)
    last_heartbeat_age_s: float | None  # the freshest heartbeat of any worker
    by_queue: dict[tuple[str, str], int]  # (queue, status) → jobs, todo and doing only


def state(conn: Connection) -> QueueState:
    rows = conn.execute(
        text(
            "SELECT queue_name, status::text, count(*) FILTER (WHERE status <> 'todo' OR scheduled_at IS NULL OR scheduled_at <= now()) "
            "FROM procrastinate_jobs WHERE status IN ('todo', 'doing', 'failed') GROUP BY 1, 2"
        )
    ).all()
    todo = doing = failed = 0
    by_queue: dict[tuple[str, str], int] = {}
    for queue, status, count in rows:
        if status == "todo":
            todo += count
        elif status == "doing":
            doing += count
        else:
            failed += count
        if status != "failed":
            by_queue[(queue, status)] = count
    # A due job's wait starts at its last event (deferred, or put back for a retry) or at its
    # scheduled time, whichever is later; the lowest ids are the oldest, so a hundred suffice.
    oldest = conn.execute(
        text(
            "SELECT max(EXTRACT(EPOCH FROM now() - GREATEST(j.scheduled_at, (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)))) "
            "FROM (SELECT id, scheduled_at FROM procrastinate_jobs WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now()) ORDER BY id LIMIT 100) j"
        )
    ).scalar()
    workers, beat_age = conn.execute(text("SELECT count(*), min(EXTRACT(EPOCH FROM now() - last_heartbeat)) FROM procrastinate_workers")).one()
    return QueueState(todo, doing, failed, None if oldest is None else max(0.0, float(oldest)), workers, None if beat_age is None else float(beat_age), by_queue)
