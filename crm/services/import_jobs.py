"""Import jobs (crm.store.jobs): queue an uploaded CSV, claim it under a lease, record each
committed batch, finish or fail it; and what a user may see of them (their organisation's
only). The runner that commits batch by batch lives with the process (widget_api.import_worker);
these functions only flush.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from crm.domain.errors import NotFound
from crm.domain.principal import Principal
from crm.services.csv_import import ImportReport
from crm.store.base import utcnow
from crm.store.jobs import ImportJob, ImportJobError
from crm.store.models import Organisation, User

MAX_ATTEMPTS = 3  # a job whose runner failed (not the file: a crash, a bug) this often is failed


class LeaseLost(Exception):
    """Another runner holds the job now (this one's lease expired): stop without writing."""


@dataclass(frozen=True)
class Claimed:
    """A job claimed by a runner, with what the runner needs to read its file."""

    id: int
    principal: Principal
    path: str
    encoding: str | None
    on_duplicate: str
    all_or_nothing: bool
    mapping: dict[str, str]
    rows_total: int | None
    rows_done: int
    attempts: int


def create(session: Session, principal: Principal, *, filename: str, path: str, size: int, on_duplicate: str, all_or_nothing: bool, mapping: dict[str, str]) -> ImportJob:
    job = ImportJob(
        organisation_id=principal.organisation_id, user_id=principal.user_id, filename=filename[:255], path=path, size=size,
        on_duplicate=on_duplicate, all_or_nothing=all_or_nothing, mapping=mapping, status="queued",
    )
    session.add(job)
    session.flush()
    return job


def get(session: Session, principal: Principal, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None or job.organisation_id != principal.organisation_id:
        raise NotFound(f"no import {job_id}")
    return job


def errors(session: Session, principal: Principal, job_id: int) -> Iterator[tuple[int, str]]:
    """The job's rejected rows (line, reason) in the order of the file, streamed from the
    database (NotFound at once, before the first row, for another organisation's job)."""
    get(session, principal, job_id)
    query = select(ImportJobError.line, ImportJobError.reason).where(ImportJobError.job_id == job_id).order_by(ImportJobError.id)
    return ((line, reason) for line, reason in session.execute(query.execution_options(yield_per=1000)))


def claim(session: Session, owner: str, lease: float, now: datetime | None = None) -> Claimed | None:
    """The oldest job that is queued, or running under a lease that expired (its runner
    died), now held by `owner` until now + lease. An organisation runs one import at a
    time: its other jobs wait. None when there is nothing to run."""
    now = now or utcnow()
    claimable = _claimable(now)
    for job_id, org_id in _candidates(session, now):
        # Serialises claims per organisation on PostgreSQL (SQLite: BEGIN IMMEDIATE already).
        session.execute(select(Organisation.id).where(Organisation.id == org_id).with_for_update())
        if _busy(session, org_id, job_id, now):
            continue
        taken = session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, claimable)
            .values(status="running", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease), attempts=ImportJob.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another runner was faster
        job = session.get(ImportJob, job_id, populate_existing=True)
        assert job is not None
        if job.started_at is None:
            job.started_at = now
        user = session.get(User, job.user_id)
        if user is None or user.organisation_id != job.organisation_id:
            _end(job, "failed", code="import_failed", detail="the importing user no longer exists")
            session.flush()
            continue
        session.flush()
        principal = Principal(user.id, user.organisation_id, user.email, user.role, user.language)
        return Claimed(job.id, principal, job.path, job.encoding, job.on_duplicate, job.all_or_nothing, dict(job.mapping), job.rows_total, job.rows_done, job.attempts)
    return None


def _claimable(now: datetime) -> Any:
    return (ImportJob.status == "queued") | ((ImportJob.status == "running") & (ImportJob.lease_expires_at < now))


def _candidates(session: Session, now: datetime) -> list[Any]:
    return list(session.execute(select(ImportJob.id, ImportJob.organisation_id).where(_claimable(now)).order_by(ImportJob.id).limit(20)))


def _busy(session: Session, org_id: int, job_id: int, now: datetime) -> bool:
    """Whether the organisation runs another import (under a live lease)."""
    return bool(session.scalar(select(exists().where(ImportJob.organisation_id == org_id, ImportJob.id != job_id, ImportJob.status == "running", ImportJob.lease_expires_at >= now))))


def next_lease_end(session: Session) -> datetime | None:
    """When the first live lease of a running job ends (a runner that died holds its job
    until then); None when no job runs."""
    now = utcnow()
    return session.scalar(select(func.min(ImportJob.lease_expires_at)).where(ImportJob.status == "running", ImportJob.lease_expires_at >= now))


def has_claimable(session: Session) -> bool:
    """Whether `claim` would find a job now (read only: to decide whether to start a runner)."""
    now = utcnow()
    return any(not _busy(session, org_id, job_id, now) for job_id, org_id in _candidates(session, now))


def _mine(session: Session, job_id: int, owner: str, lease: float, **values: object) -> None:
    """Renew the lease (and set `values`) if `owner` still holds the job; else LeaseLost,
    and the caller's transaction must roll back."""
    now = utcnow()
    done = session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.lease_owner == owner, ImportJob.status == "running").values({"lease_expires_at": now + timedelta(seconds=lease), "updated_at": now, **values})
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"import {job_id} is no longer held by {owner}")


def renew(session: Session, job_id: int, owner: str, lease: float) -> None:
    _mine(session, job_id, owner, lease)


def set_scan(session: Session, job_id: int, owner: str, lease: float, *, encoding: str, rows_total: int) -> None:
    _mine(session, job_id, owner, lease, encoding=encoding, rows_total=rows_total)


def record_batch(session: Session, job_id: int, owner: str, lease: float, rows_done: int, report: ImportReport) -> None:
    """One batch's outcome, in the transaction of its leads: the committed offset moves with them."""
    _mine(
        session, job_id, owner, lease, rows_done=rows_done, created=ImportJob.created + report.created, merged=ImportJob.merged + report.merged,
        skipped=ImportJob.skipped + report.skipped, rejected=ImportJob.rejected + len(report.rejected),
    )
    add_errors(session, job_id, report.rejected)


def add_errors(session: Session, job_id: int, rejected: list[tuple[int, str]]) -> None:
    if rejected:
        session.execute(ImportJobError.__table__.insert(), [{"job_id": job_id, "line": line, "reason": reason[:500]} for line, reason in rejected])


def finish(session: Session, job_id: int, owner: str, *, committed: bool, rejected: int | None = None) -> None:
    now = utcnow()
    values: dict[str, object] = {"status": "done", "committed": committed, "finished_at": now, "lease_owner": None, "lease_expires_at": None}
    if rejected is not None:
        values["rejected"] = rejected
    _mine(session, job_id, owner, 0, **values)


def fail(session: Session, job_id: int, owner: str, *, code: str, detail: str) -> None:
    _mine(session, job_id, owner, 0, status="failed", error_code=code, error=detail[:500], finished_at=utcnow(), lease_owner=None, lease_expires_at=None)


def clear_errors(session: Session, job_id: int, owner: str, lease: float) -> None:
    """Forget the rejected rows of an earlier scan of the job that did not finish."""
    _mine(session, job_id, owner, lease)
    session.execute(delete(ImportJobError).where(ImportJobError.job_id == job_id))


def stored_encoding(session: Session, job_id: int) -> str | None:
    return session.scalar(select(ImportJob.encoding).where(ImportJob.id == job_id))


def release(session: Session, job_id: int, owner: str) -> str | None:
    """The runner failed for a reason of its own (not the file's): queued again for a later
    try, or failed after MAX_ATTEMPTS. Returns the job's new status."""
    job = session.get(ImportJob, job_id, populate_existing=True)
    if job is None or job.lease_owner != owner or job.status != "running":
        return None
    if job.attempts >= MAX_ATTEMPTS:
        _end(job, "failed", code="import_failed", detail=f"the import failed {job.attempts} times; see the server log")
    else:
        job.status, job.lease_owner, job.lease_expires_at, job.updated_at = "queued", None, None, utcnow()
    session.flush()
    return job.status


def requeue(session: Session, job_id: int, owner: str) -> None:
    """The runner stops on purpose (shutdown): the job waits for the next one, and this
    attempt does not count."""
    _mine(session, job_id, owner, 0, status="queued", lease_owner=None, lease_expires_at=None, attempts=ImportJob.attempts - 1)


def _end(job: ImportJob, status: str, *, code: str, detail: str) -> None:
    job.status, job.error_code, job.error = status, code, detail[:500]
    job.finished_at = job.updated_at = utcnow()
    job.lease_owner = job.lease_expires_at = None
