"""`mailwidget import-leads FILE.csv`: CSV import with a progress bar on stderr and an
error CSV of the rejected rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select

from crm.domain.principal import Principal
from crm.services import csv_import
from crm.store.db import refresh_statistics
from crm.store.models import User
from widget_api.cli import UsageError
from widget_api.cli._runtime import cli_runtime
from widget_api.routes.imports import parse_mapping


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("import-leads", help="import leads from a CSV file (UTF-8 or Shift_JIS)")
    p.add_argument("file", type=Path)
    p.add_argument("--user", required=True, help="the importing user's email (owner of the leads)")
    p.add_argument("--org", type=int, required=True, help="organisation id")
    p.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD", help="map a CSV column to a lead field (repeatable)")
    p.add_argument("--on-duplicate", choices=("skip", "merge"), default="skip")
    p.add_argument("--row-by-row", action="store_true", help="keep the good rows even when others are rejected (default: all or nothing)")
    p.add_argument("--errors", type=Path, help="write the rejected rows (line, reason) to this CSV")
    p.set_defaults(func=run)


def _bar(total: int):  # type: ignore[no-untyped-def]
    def show(done: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read ({exc.strerror})") from None
    text = csv_import.decode(data)
    total = max(text.count("\n") - 1, 1)
    runtime = cli_runtime()
    try:
        with runtime.sessions.begin() as s:
            user = s.scalar(select(User).where(User.organisation_id == args.org, User.email == args.user.strip().lower()))
            if user is None:
                raise UsageError(f"no user {args.user} in organisation {args.org}")
            principal = Principal(user.id, user.organisation_id, user.email, user.role, user.language)
            report = csv_import.import_leads(
                s, principal, csv_import.rows(text, parse_mapping(args.map)), on_duplicate=args.on_duplicate, all_or_nothing=not args.row_by_row, progress=_bar(total)
            )
            refresh_statistics(s)
    finally:
        runtime.close()
    print(file=sys.stderr)
    if args.errors:
        args.errors.write_text(report.errors_csv(), encoding="utf-8")
    r = report.as_dict()
    state = "committed" if report.committed else "NOT committed (rows were rejected; use --row-by-row to keep the good ones)"
    print(f"created {r['created']}, merged {r['merged']}, skipped {r['skipped']} duplicates, rejected {r['rejected']}; {state}")
    return 0 if report.committed else 1
