"""CSV import of leads through the API (the CLI has `mailwidget import-leads`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput
from crm.domain.principal import Principal
from crm.services import csv_import
from crm.store.db import refresh_statistics
from widget_api.deps import ImportUser, SessionDep
from widget_api.errors import responses

router = APIRouter(prefix="/api/v1/imports", tags=["imports"], responses=responses(400, 413, 429))
MAX_BYTES = 100 * 1024 * 1024


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """["会社=company", …] → {"会社": "company"}."""
    mapping = {}
    for pair in pairs:
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise InvalidInput(f"a mapping is COLUMN=field, not {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping


@router.post("/leads")
async def import_leads(
    session: SessionDep,
    principal: ImportUser,
    file: Annotated[UploadFile, File(description="CSV with a header row; UTF-8 (BOM or not) or Shift_JIS")],
    on_duplicate: Annotated[Literal["skip", "merge"], Form()] = "skip",
    mode: Annotated[Literal["all_or_nothing", "row_by_row"], Form()] = "all_or_nothing",
    mapping: Annotated[list[str] | None, Form(description="COLUMN=field, repeatable")] = None,
) -> dict[str, object]:
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InvalidInput("the file is larger than 100 MB", code="payload_too_large")
    # Decoding and importing a large file takes seconds to minutes of CPU and database work:
    # in the thread pool, so the event loop keeps answering every other request meanwhile.
    return await run_in_threadpool(_import, session, principal, data, on_duplicate, mode, mapping or [])


def _import(session: Session, principal: Principal, data: bytes, on_duplicate: str, mode: str, mapping: list[str]) -> dict[str, object]:
    rows = csv_import.rows(csv_import.decode(data), parse_mapping(mapping))
    report = csv_import.import_leads(session, principal, rows, on_duplicate=on_duplicate, all_or_nothing=mode == "all_or_nothing")
    refresh_statistics(session)
    return {**report.as_dict(), "errors_csv": report.errors_csv()}
