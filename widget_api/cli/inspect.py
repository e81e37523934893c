"""`mailwidget inspect FILE.eml…`: the lead draft of message files, one JSON object each
(one per line when several), without a server or a database."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path

from crm.domain.drafts import LeadDraft, ReadContext
from crm.domain.invites import InviteDraft
from crm.domain.ports import CalendarObject
from mail_adapter.junk_diagnosis import diagnose_headers
from mail_adapter.reading import looks_like_mail, read_raw
from widget_api.cli import UsageError
from widget_api.explain import explain

MAX_BYTES = 100 * 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("inspect", help="print the lead draft of .eml files as JSON")
    p.add_argument("files", nargs="+", type=Path, help=".eml files, or folders of them")
    p.add_argument("--own-domain", action="append", default=[], help="your organisation's mail domain (repeatable)")
    p.add_argument("--region", default="JP", help="default phone region (ISO 3166)")
    p.add_argument("--trust", action="append", default=[], help="authserv-id whose Authentication-Results to believe (default: the topmost)")
    p.set_defaults(func=run)


def draft_json(raw: bytes, ctx: ReadContext) -> dict[str, object]:
    opened = read_raw(raw, ctx)
    return {
        "lead": opened.draft.values(),
        "sources": {name: {"source": f.source, "confidence": f.confidence, "line": f.line} for name, f in opened.draft.fields.items()},
        "warnings": list(opened.draft.warnings),
        "person": _person_json(opened.draft),
        "alternatives": [{"person": _person_json(a), "lead": a.values()} for a in opened.draft.alternatives],
        "message_id": opened.message_id,
        "subject": opened.subject,
        "sender": opened.sender,
        "invites": [invite_json(i) for i in _invites(opened.calendars)],
        "authentication": authentication(opened.headers, ctx),
    }


def _invites(calendars: tuple[CalendarObject, ...]) -> list[InviteDraft]:
    if not calendars:
        return []  # most mail has no calendar part: the iCalendar library is not even loaded
    from mail_adapter.invites import read_invites

    return read_invites(calendars)[0]


def _person_json(draft: LeadDraft) -> dict[str, object] | None:
    p = draft.person
    return {"role": p.role, "name": p.name, "email": p.email, "evidence": list(p.evidence)} if p else None


def _iso(value: object) -> str | None:
    """ISO 8601: with the UTC offset; a plain date for all-day; no offset for floating."""
    return value.isoformat() if isinstance(value, (datetime, date)) else None


def invite_json(i: InviteDraft) -> dict[str, object]:
    return {
        "method": i.method, "uid": i.uid, "recurrence_id": i.instance_key or None, "sequence": i.sequence, "summary": i.summary,
        "start": _iso(i.start), "end": _iso(i.end), "all_day": i.all_day, "floating": i.floating, "time_zone": i.time_zone,
        "status": i.status, "organizer": i.organizer,
        "attendees": [{"email": a.email, "name": a.name, "partstat": a.partstat, "role": a.role} for a in i.attendees],
        "rrule": i.rrule, "location": i.location, "online_url": i.online_url, "warnings": list(i.warnings),
    }


def authentication(headers: tuple[tuple[str, str], ...], ctx: ReadContext) -> dict[str, object]:
    """SPF/DKIM/DMARC as the receiving server saw them, the filter's report, and why (ja/en)."""
    d = diagnose_headers(list(headers), ctx)
    out = dict(d.authentication)
    out["spam"] = d.spam
    out["explanation"] = {lang: explain(d, lang) for lang in ("ja", "en")}
    return out


def _files(paths: list[Path]) -> list[Path]:
    out = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".msg", "")))
        else:
            out.append(path)
    return out


def read_message_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"{path}: larger than {MAX_BYTES // 2**20} MB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if not looks_like_mail(raw):
        raise UsageError(f"{path}: not an email message")
    return raw


def run(args: argparse.Namespace) -> int:
    ctx = ReadContext(own_domains=frozenset(d.lower() for d in args.own_domain), default_region=args.region.upper(), trusted_authserv_ids=frozenset(t.lower() for t in args.trust))
    files = _files(args.files)
    if not files:
        raise UsageError("no message files found")
    for path in files:
        print(json.dumps(draft_json(read_message_file(path), ctx), ensure_ascii=False), file=sys.stdout)
    return 0
