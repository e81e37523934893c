"""CRM commands: `import-leads` (CSV, with a progress bar on stderr and an error CSV of the
rejected rows), `campaign-create`, `campaign-add`, `campaign-show`, `convert-lead`,
`view-leads`. Each acts as a user of an organisation (--org, --user)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sqlalchemy import select

from crm.domain.principal import Principal
from crm.services import campaigns, conversion, csv_import, views, web_forms
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
    p = sub.add_parser("import-jobs", help="run the queued import jobs (uploads to /api/v1/imports/leads) until none is left")
    p.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by N (the API starts it with 10)")
    p.set_defaults(func=run_import_jobs)

    p = sub.add_parser("campaign-create", help="create a campaign (default statuses 送信済み / 反応あり / 未反応)")
    _who(p)
    p.add_argument("name")
    p.set_defaults(func=campaign_create)
    p = sub.add_parser("campaign-add", help="add leads to a campaign with one status")
    _who(p)
    p.add_argument("campaign", type=int)
    p.add_argument("leads", help="lead ids, comma-separated")
    p.add_argument("--status", help="default: the campaign's default status")
    p.add_argument("--update-status", action="store_true")
    p.set_defaults(func=campaign_add)
    p = sub.add_parser("campaign-show", help="a campaign's statuses with member counts")
    _who(p)
    p.add_argument("campaign", type=int)
    p.set_defaults(func=campaign_show)
    p = sub.add_parser("convert-lead", help="convert a lead into an account and a contact (and a deal)")
    _who(p)
    p.add_argument("lead", type=int)
    p.add_argument("--account", type=int, help="link to this existing account")
    p.add_argument("--deal", metavar="NAME", help="also create a deal")
    p.add_argument("--preview", action="store_true", help="only show the existing accounts that match, as JSON")
    p.set_defaults(func=convert_lead)
    p = sub.add_parser("conversion-settings", help="show, or (admin) set, what makes an account the same company in conversion")
    _who(p)
    p.add_argument("--match", help="comma-separated: company_name, email_domain, company_key")
    p.add_argument("--company-key-field", help="the custom lead field holding the company key")
    p.set_defaults(func=conversion_settings)
    p = sub.add_parser("form-duplicates", help="show, or (admin) set, what a web form submission does to an existing lead with its address")
    _who(p)
    p.add_argument("--set", dest="policy", choices=web_forms.DUPLICATE_POLICIES, help="fill: its empty fields; replace: the submitted values win; keep: untouched")
    p.set_defaults(func=form_duplicates)
    p = sub.add_parser("view-leads", help="the leads of a saved view, as JSON lines")
    _who(p)
    p.add_argument("view", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=view_leads)


def _who(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, help="acting user's email")
    p.add_argument("--org", type=int, required=True, help="organisation id")


def _principal(s, args: argparse.Namespace) -> Principal:  # type: ignore[no-untyped-def]
    user = s.scalar(select(User).where(User.organisation_id == args.org, User.email == args.user.strip().lower()))
    if user is None:
        raise UsageError(f"no user {args.user} in organisation {args.org}")
    return Principal(user.id, user.organisation_id, user.email, user.role, user.language)


def _in_session(args: argparse.Namespace, action):  # type: ignore[no-untyped-def]
    runtime = cli_runtime()
    try:
        with runtime.sessions.begin() as s:
            return action(s, _principal(s, args))
    finally:
        runtime.close()


def campaign_create(args: argparse.Namespace) -> int:
    summary = _in_session(args, lambda s, p: campaigns.summary(s, p, campaigns.create_campaign(s, p, args.name).id))
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def campaign_add(args: argparse.Namespace) -> int:
    try:
        ids = [int(x) for x in args.leads.split(",") if x.strip()]
    except ValueError:
        raise UsageError("lead ids are numbers, comma-separated") from None
    report = _in_session(args, lambda s, p: campaigns.add_leads(s, p, args.campaign, ids, status=args.status, update_status=args.update_status))
    for lead_id, outcome in report.items():
        print(f"{lead_id}\t{outcome}")
    return 0


def campaign_show(args: argparse.Namespace) -> int:
    summary = _in_session(args, lambda s, p: campaigns.summary(s, p, args.campaign))
    for status in summary["statuses"]:
        print(f"{status['name']}\t{status['members']}{' (responded)' if status['responded'] else ''}")
    return 0


def convert_lead(args: argparse.Namespace) -> int:
    if args.preview:
        print(json.dumps(_in_session(args, lambda s, p: conversion.preview(s, p, args.lead)), ensure_ascii=False))
        return 0
    done = _in_session(args, lambda s, p: conversion.convert(s, p, args.lead, account_id=args.account, create_deal=bool(args.deal), deal_name=args.deal))
    print(f"lead {done.lead_id} -> account {done.account_id}, contact {done.contact_id}" + (f", deal {done.deal_id}" if done.deal_id else ""))
    return 0


MATCHES = ("company_name", "email_domain", "company_key")


def conversion_settings(args: argparse.Namespace) -> int:
    def run_settings(s, p):  # type: ignore[no-untyped-def]
        current = conversion.settings(s, p.organisation_id)
        if args.match is None and args.company_key_field is None:
            return current
        if args.match is None:  # only --company-key-field: keep the rest, match by that key too
            match = {m for m, on in zip(MATCHES, (current.match_company_name, current.match_email_domain, True), strict=True) if on}
        else:
            match = {m.strip() for m in args.match.split(",") if m.strip()}
        if match - set(MATCHES):
            raise UsageError(f"--match takes {', '.join(MATCHES)}; not {', '.join(sorted(match - set(MATCHES)))}")
        key_field = (args.company_key_field or current.company_key_field) if "company_key" in match else None
        if "company_key" in match and not key_field:
            raise UsageError("matching by company_key needs --company-key-field")
        return conversion.configure(s, p, match_company_name="company_name" in match, match_email_domain="email_domain" in match, company_key_field=key_field)

    print(json.dumps(conversion.settings_dict(_in_session(args, run_settings)), ensure_ascii=False))
    return 0


def form_duplicates(args: argparse.Namespace) -> int:
    def run_settings(s, p):  # type: ignore[no-untyped-def]
        return web_forms.set_duplicate_policy(s, p, args.policy) if args.policy else web_forms.duplicate_policy(s, p.organisation_id)

    print(json.dumps({"on_duplicate": _in_session(args, run_settings)}))
    return 0


def view_leads(args: argparse.Namespace) -> int:
    def run_view(s, p):  # type: ignore[no-untyped-def]
        return views.view_leads(s, p, args.view, limit=args.limit)[0]

    for lead in _in_session(args, run_view):
        print(json.dumps({"id": lead.id, "last_name": lead.last_name, "first_name": lead.first_name, "company": lead.company, "email": lead.email}, ensure_ascii=False))
    return 0


def _bar(total: int):  # type: ignore[no-untyped-def]
    def show(done: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)

    return show


def _lines(path: Path) -> int:
    """Data rows for the progress bar (newlines less the header), counted a chunk at a time."""
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count - 1, 1)


def run(args: argparse.Namespace) -> int:
    try:
        encoding = csv_import.file_encoding(args.file)  # the file streams: never held whole
        total = _lines(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read ({exc.strerror})") from None
    runtime = cli_runtime()
    try:
        with runtime.sessions.begin() as s, csv_import.open_text(args.file, encoding) as text:
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


def run_import_jobs(args: argparse.Namespace) -> int:
    """What the API's background runner does, in the foreground: jobs left running by a
    process that died are taken over once their lease expired."""
    import signal
    import threading

    if args.nice:
        os.nice(args.nice)  # requests of the API process get the CPU first
    stop = threading.Event()  # SIGTERM (the API shutting down): the job goes back to the queue
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime = cli_runtime()
    ran = 0
    try:
        while not stop.is_set() and runtime.import_worker.run_once("import-jobs", stop):
            ran += 1
    finally:
        runtime.close()
    print(f"{ran} import job(s) run", file=sys.stderr)
    return 0
