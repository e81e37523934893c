"""Workflow rule commands: `rule-create`, `rules`, `rule-update`, `rule-pause`,
`rule-resume`, `rule-delete`, `rule-dry-run`, `template-create` for the mail a rule
sends, and `bulk-send` of a template to leads or a view (now or scheduled). Each acts as a user of an organisation (--org, --user); writing takes an admin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from crm.domain import filters as f
from crm.domain.principal import Principal
from crm.services import rules, templates
from crm.services.leads import LEAD_SOURCES
from crm.store.models import User
from widget_api.cli import UsageError
from widget_api.cli._runtime import cli_runtime


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("template-create", help="create a mail template (merge fields such as {{lead.last_name}})")
    _who(p)
    p.add_argument("name")
    p.add_argument("--subject", required=True)
    p.add_argument("--text-file", type=Path, required=True, help="the plain-text body (UTF-8)")
    p.add_argument("--html-file", type=Path, help="the HTML body (UTF-8)")
    p.add_argument("--language", choices=("ja", "en"), default="ja")
    p.add_argument("--charset", choices=("utf-8", "iso-2022-jp"), default="utf-8")
    p.set_defaults(func=template_create)
    p = sub.add_parser("rule-create", help="create a workflow rule: mail a template to new leads of some sources")
    _who(p)
    p.add_argument("name")
    _rule_options(p, creating=True)
    p.set_defaults(func=rule_create)
    p = sub.add_parser("rules", help="list the workflow rules as JSON lines")
    _who(p)
    p.set_defaults(func=rule_list)
    p = sub.add_parser("rule-update", help="change a workflow rule")
    _who(p)
    p.add_argument("rule", type=int)
    p.add_argument("--name")
    _rule_options(p, creating=False)
    p.set_defaults(func=rule_update)
    for name, help_ in (("rule-pause", "pause a workflow rule"), ("rule-resume", "resume a paused workflow rule"), ("rule-delete", "delete a workflow rule")):
        p = sub.add_parser(name, help=help_)
        _who(p)
        p.add_argument("rule", type=int)
        p.set_defaults(func=rule_change)
    p = sub.add_parser("rule-dry-run", help="whom a rule would mail among the latest leads of its sources (nothing is queued)")
    _who(p)
    p.add_argument("rule", type=int)
    p.add_argument("--leads", help="lead ids, comma-separated (default: the latest 1,000 of the rule's sources)")
    p.set_defaults(func=rule_dry_run)
    p = sub.add_parser("bulk-send", help="queue a template for leads or a saved view's, now or at --at (one mail per address, within the daily limit)")
    _who(p)
    p.add_argument("--template", type=int, required=True, help="template id")
    p.add_argument("--leads", help="lead ids, comma-separated (or --view)")
    p.add_argument("--view", type=int, help="a saved view's leads (or --leads)")
    p.add_argument("--at", help="ISO date-time with a time zone: a scheduled send (default: now)")
    p.add_argument("--key", help="batch key: the same key again queues nothing new")
    p.set_defaults(func=bulk_send)


def _who(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, help="acting user's email")
    p.add_argument("--org", type=int, required=True, help="organisation id")


def _rule_options(p: argparse.ArgumentParser, *, creating: bool) -> None:
    p.add_argument("--sources", required=creating, help=f"comma-separated: {', '.join(LEAD_SOURCES)}")
    p.add_argument("--template", type=int, required=creating, help="template id")
    p.add_argument("--conditions", help="a filter of the view language, as JSON; 'none' for every lead")
    p.add_argument("--delay", type=int, help="minutes after the lead's creation")


def _in_session(args: argparse.Namespace, action):  # type: ignore[no-untyped-def]
    runtime = cli_runtime()
    try:
        with runtime.sessions.begin() as s:
            user = s.scalar(select(User).where(User.organisation_id == args.org, User.email == args.user.strip().lower()))
            if user is None:
                raise UsageError(f"no user {args.user} in organisation {args.org}")
            return action(s, Principal(user.id, user.organisation_id, user.email, user.role, user.language))
    finally:
        runtime.close()


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read as UTF-8 ({exc})") from None


def _rule_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if getattr(args, "name", None) is not None:
        values["name"] = args.name
    if args.sources is not None:
        values["sources"] = [s.strip() for s in args.sources.split(",") if s.strip()]
    if args.template is not None:
        values["template_id"] = args.template
    if args.delay is not None:
        values["delay_minutes"] = args.delay
    if args.conditions is not None:
        try:
            values["conditions"] = None if args.conditions.strip().lower() == "none" else f.FILTER.validate_json(args.conditions)
        except ValidationError as exc:
            raise UsageError(f"--conditions is not a filter: {exc.errors()[0]['msg']}") from None
    return values


def _rule_json(rule: Any) -> str:
    return json.dumps(
        {"id": rule.id, "name": rule.name, "sources": rule.sources, "conditions": rule.conditions, "template_id": rule.template_id, "delay_minutes": rule.delay_minutes, "paused": rule.paused},
        ensure_ascii=False,
    )


def template_create(args: argparse.Namespace) -> int:
    values = {"name": args.name, "subject": args.subject, "text_body": _read(args.text_file), "html_body": _read(args.html_file), "language": args.language, "charset": args.charset}
    made = _in_session(args, lambda s, p: templates.create_template(s, p, values))
    print(json.dumps({"id": made.id, "name": made.name}, ensure_ascii=False))
    return 0


def rule_create(args: argparse.Namespace) -> int:
    print(_in_session(args, lambda s, p: _rule_json(rules.create_rule(s, p, _rule_values(args)))))
    return 0


def rule_list(args: argparse.Namespace) -> int:
    for line in _in_session(args, lambda s, p: [_rule_json(r) for r in rules.list_rules(s, p)]):
        print(line)
    return 0


def rule_update(args: argparse.Namespace) -> int:
    print(_in_session(args, lambda s, p: _rule_json(rules.update_rule(s, p, args.rule, _rule_values(args)))))
    return 0


def rule_change(args: argparse.Namespace) -> int:
    if args.command == "rule-delete":
        _in_session(args, lambda s, p: rules.delete_rule(s, p, args.rule))
        print(f"rule {args.rule} deleted")
    else:
        print(_in_session(args, lambda s, p: _rule_json(rules.set_paused(s, p, args.rule, args.command == "rule-pause"))))
    return 0


def rule_dry_run(args: argparse.Namespace) -> int:
    try:
        ids = [int(x) for x in args.leads.split(",") if x.strip()] if args.leads else None
    except ValueError:
        raise UsageError("lead ids are numbers, comma-separated") from None

    def run(s, p):  # type: ignore[no-untyped-def]
        planned = rules.dry_run(s, p, args.rule, ids)
        return [*(f"mail\t{m.lead_id}\t{m.to_address}\t{m.mail.subject}" for m in planned.mails), *(f"skip\t{x.lead_id}\t{x.email or ''}\t{x.reason}" for x in planned.skipped)]

    for line in _in_session(args, run):
        print(line)
    return 0


def bulk_send(args: argparse.Namespace) -> int:
    from datetime import datetime

    from crm.services import bulk_mail

    try:
        ids = [int(x) for x in args.leads.split(",") if x.strip()] if args.leads else None
        at = datetime.fromisoformat(args.at) if args.at else None
    except ValueError:
        raise UsageError("--leads takes numbers, comma-separated; --at an ISO date-time") from None

    def run(s, p):  # type: ignore[no-untyped-def]
        r = bulk_mail.send(s, p, template_id=args.template, lead_ids=ids, view_id=args.view, send_at=at, batch_key=args.key)
        return {"batch_key": r.batch_key, "kind": r.kind, "recipients": r.recipients, "send_at": r.send_at.isoformat() if r.send_at else None, "counts": r.counts}

    print(json.dumps(_in_session(args, run), ensure_ascii=False))
    return 0
