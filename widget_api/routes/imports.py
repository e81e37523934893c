"""CSV import of leads through the API, as a job: the upload is stored under the data
directory and answered 202 at once; the background runner (widget_api.import_worker) imports
it in committed batches, and `GET /imports/{id}` shows its progress and counts. The CLI
(`mailwidget import-leads`) imports a file directly, with a progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import File, Form, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from crm.domain.csv_export import csv_text
from crm.domain.errors import InvalidInput
from crm.domain.principal import Principal
from crm.services import import_jobs
from crm.store.jobs import ImportJob
from widget_api.deps import CurrentUser, ImportUser, ReadSessionDep, RuntimeDep
from widget_api.errors import language_of, responses
from widget_api.i18n import translate
from widget_api.import_worker import upload_path
from widget_api.routing import PrefixRouter
from widget_api.runtime import Runtime
from widget_api.schemas import Id

router = PrefixRouter(prefix="/api/v1/imports", tags=["imports"], responses=responses(400, 404, 413, 429))
MAX_BYTES = 100 * 1024 * 1024
COPY_CHUNK = 1 << 20


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """["会社=company", …] → {"会社": "company"}."""
    mapping = {}
    for pair in pairs:
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise InvalidInput(f"a mapping is COLUMN=field, not {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping


class Progress(BaseModel):
    rows_done: int
    rows_total: int | None  # None until the file was scanned


class Counts(BaseModel):
    created: int
    updated: int  # existing leads whose empty fields were filled (on_duplicate=merge)
    skipped: int  # duplicates left alone
    errors: int  # rejected rows: see errors_csv


class JobError(BaseModel):
    type: str
    detail: str  # in the user's language
    reason: str  # the server's English, with the line when there is one


class ImportJobRead(BaseModel):
    id: int
    status: Literal["queued", "running", "done", "failed"]
    filename: str
    size: int
    on_duplicate: str
    mode: Literal["all_or_nothing", "row_by_row"]
    progress: Progress
    counts: Counts
    committed: bool | None  # done: whether the rows were kept (all or nothing keeps none when one is rejected)
    error: JobError | None  # failed: why
    errors_csv: str  # URL of the rejected rows (line, reason)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def job_read(request: Request, job: ImportJob) -> ImportJobRead:
    error = None
    if job.status == "failed":
        code = job.error_code or "import_failed"
        error = JobError(type=code, detail=translate(code, language_of(request), default=job.error or code), reason=job.error or "")
    return ImportJobRead(
        id=job.id, status=job.status, filename=job.filename, size=job.size, on_duplicate=job.on_duplicate,  # type: ignore[arg-type]
        mode="all_or_nothing" if job.all_or_nothing else "row_by_row",
        progress=Progress(rows_done=job.rows_done, rows_total=job.rows_total),
        counts=Counts(created=job.created, updated=job.merged, skipped=job.skipped, errors=job.rejected),
        committed=job.committed, error=error, errors_csv=f"/api/v1/imports/{job.id}/errors.csv",
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, updated_at=job.updated_at,
    )


@router.post("/leads", status_code=status.HTTP_202_ACCEPTED)
def import_leads(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: ImportUser,
    file: Annotated[UploadFile, File(description="CSV with a header row; UTF-8 (BOM or not) or Shift_JIS; at most 100 MB")],
    on_duplicate: Annotated[Literal["skip", "merge"], Form()] = "skip",
    mode: Annotated[Literal["all_or_nothing", "row_by_row"], Form()] = "all_or_nothing",
    mapping: Annotated[list[str] | None, Form(description="COLUMN=field, repeatable")] = None,
) -> ImportJobRead:
    """Queue the import; poll the job's `GET /imports/{id}` (Location) until done or failed."""
    explicit = parse_mapping(mapping or [])
    relative = _store(runtime, file)
    try:
        with runtime.sessions.begin() as session:
            job = import_jobs.create(
                session, principal, filename=file.filename or "", path=relative, size=(runtime.settings.data_dir / relative).stat().st_size,
                on_duplicate=on_duplicate, all_or_nothing=mode == "all_or_nothing", mapping=explicit,
            )
    except BaseException:
        (runtime.settings.data_dir / relative).unlink(missing_ok=True)
        raise
    runtime.import_worker.wake()
    response.headers["Location"] = f"/api/v1/imports/{job.id}"
    return job_read(request, job)


def _store(runtime: Runtime, file: UploadFile) -> str:
    """Copy the upload (already spooled to a temporary file by the form parser) into the data
    directory, a chunk at a time and never past MAX_BYTES."""
    path, relative = upload_path(runtime.settings.data_dir)
    written = 0
    try:
        with path.open("wb") as out:
            while chunk := file.file.read(COPY_CHUNK):
                written += len(chunk)
                if written > MAX_BYTES:
                    raise InvalidInput("the file is larger than 100 MB", code="payload_too_large")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not written:
        path.unlink(missing_ok=True)
        raise InvalidInput("the file is empty", code="empty_file")
    return relative


@router.get("/{job_id}")
def read(job_id: Id, request: Request, session: ReadSessionDep, principal: CurrentUser) -> ImportJobRead:
    return job_read(request, import_jobs.get(session, principal, job_id))


@router.get("/{job_id}/errors.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}, "description": "line,reason of each rejected row"}})
def errors_csv(job_id: Id, runtime: RuntimeDep, principal: CurrentUser) -> StreamingResponse:
    with runtime.read_sessions() as session:
        import_jobs.get(session, principal, job_id)  # 404 before anything is sent
    return StreamingResponse(_error_lines(runtime, principal, job_id), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'})


def _error_lines(runtime: Runtime, principal: Principal, job_id: int) -> Iterator[str]:
    """The error CSV in pieces, from its own session (the request's is closed by then)."""
    yield csv_text([("line", "reason")])
    with runtime.read_sessions() as session:
        chunk: list[tuple[int, str]] = []
        for row in import_jobs.errors(session, principal, job_id):
            chunk.append(row)
            if len(chunk) == 1000:
                yield csv_text(chunk)
                chunk.clear()
        yield csv_text(chunk)
