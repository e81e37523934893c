"""Workflow rules: when a lead is created from one of the rule's sources and matches its
conditions, it is mailed the rule's template (after the rule's delay).

Conditions are the view filter language (crm.domain.filters), run as SQL by
crm.services.views over the whole batch of new leads: a CSV import of 10,000 leads costs one
query per rule, not one per lead. The mails go to the outbox, keyed by (rule, lead) so a
lead is never mailed twice by one rule, and one address only once per send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.domain import filters as f
from crm.domain import templates as t
from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.services import outbox, views
from crm.services.leads import LEAD_SOURCES
from crm.services.organisations import require_admin
from crm.services.templates import get_template
from crm.store.automation import MailTemplate, WorkflowRule
from crm.store.base import utcnow
from crm.store.custom_fields import CustomField, CustomValue
from crm.store.db import among, id_chunks
from crm.store.models import Lead
from crm.store.outbox import MailSuppression, OutboxMail

MAX_DELAY_MINUTES = 60 * 24 * 90
EDITABLE = ("name", "sources", "conditions", "template_id", "delay_minutes", "paused")


@dataclass(frozen=True)
class PlannedMail:
    """One mail a rule (or a bulk send) sends: to `to_address` (the lead's address as
    written), rendered. `key`: what sends it once per lead ("rule:7", "bulk:<batch>")."""

    key: str
    lead_id: int
    to_address: str
    mail: t.RenderedMail
    charset: str
    not_before: datetime | None

    @property
    def dedupe_key(self) -> str:
        return f"{self.key}:lead:{self.lead_id}"


@dataclass(frozen=True)
class Skipped:
    """A matching lead the rule does not mail, and why ("no_address", "duplicate_address",
    or what the outbox says: "already_mailed", "unsubscribed", "bounced", …)."""

    lead_id: int
    email: str | None
    reason: str
    key: str | None = None  # as PlannedMail's: the skip is recorded once per (key, lead)


@dataclass
class Plan:
    mails: list[PlannedMail] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def stored_conditions(rule: WorkflowRule) -> f.Filter | None:
    try:
        return f.FILTER.validate_python(rule.conditions) if rule.conditions else None
    except ValidationError:
        raise InvalidInput(f"the conditions of rule {rule.id} are not valid any more: save the rule again", code="invalid_rule") from None


def _check(session: Session, principal: Principal, rule: WorkflowRule, conditions: f.Filter | None) -> None:
    if not (rule.name or "").strip():
        raise InvalidInput("a rule needs a name", field="name")
    sources = list(rule.sources or [])
    if not sources or any(s not in LEAD_SOURCES for s in sources) or len(set(sources)) != len(sources):
        raise InvalidInput(f"sources: one or more of {', '.join(LEAD_SOURCES)}, each once", field="sources")
    if not 0 <= rule.delay_minutes <= MAX_DELAY_MINUTES:
        raise InvalidInput(f"delay_minutes: 0 to {MAX_DELAY_MINUTES}", field="delay_minutes")
    get_template(session, principal, rule.template_id)
    views.query_leads(session, principal, conditions, limit=1)  # refuse conditions that cannot run (unknown custom field, wrong type)


def _unique_name(session: Session, principal: Principal, name: str, ignore: int | None = None) -> None:
    other = session.scalar(select(WorkflowRule.id).where(WorkflowRule.organisation_id == principal.organisation_id, WorkflowRule.name == name))
    if other is not None and other != ignore:
        raise Conflict(f"a rule named {name!r} exists", existing_id=other, field="name")


def create_rule(session: Session, principal: Principal, values: Mapping[str, object]) -> WorkflowRule:
    """values: name, sources, conditions (a crm.domain.filters node or None), template_id,
    delay_minutes, paused."""
    require_admin(principal)
    conditions = values.get("conditions")
    rule = WorkflowRule(
        organisation_id=principal.organisation_id, created_by_id=principal.user_id, name=str(values.get("name") or "").strip(),
        sources=list(values.get("sources") or []),  # type: ignore[call-overload]
        conditions=f.FILTER.dump_python(conditions, mode="json") if conditions is not None else None,
        template_id=values.get("template_id"), delay_minutes=values.get("delay_minutes") or 0, paused=bool(values.get("paused", False)),
    )
    _check(session, principal, rule, conditions)  # type: ignore[arg-type]
    _unique_name(session, principal, rule.name)
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, principal: Principal, rule_id: int) -> WorkflowRule:
    rule = session.get(WorkflowRule, rule_id)
    if rule is None or rule.organisation_id != principal.organisation_id:
        raise NotFound(f"no rule {rule_id}")
    return rule


def list_rules(session: Session, principal: Principal) -> list[WorkflowRule]:
    return list(session.scalars(select(WorkflowRule).where(WorkflowRule.organisation_id == principal.organisation_id).order_by(WorkflowRule.id)))


def update_rule(session: Session, principal: Principal, rule_id: int, values: Mapping[str, object]) -> WorkflowRule:
    """Change the given fields (conditions None: every lead of the sources)."""
    require_admin(principal)
    rule = get_rule(session, principal, rule_id)
    with session.no_autoflush:
        for key in EDITABLE:
            if key in values:
                value = values[key]
                if key == "conditions":
                    value = f.FILTER.dump_python(value, mode="json") if value is not None else None
                elif key == "name":
                    value = str(value).strip()
                elif key == "sources":
                    value = list(value)  # type: ignore[call-overload]
                setattr(rule, key, value)
        try:
            _check(session, principal, rule, stored_conditions(rule))
            _unique_name(session, principal, rule.name, ignore=rule.id)
        except Exception:
            session.expire(rule)
            raise
    session.flush()
    return rule


def set_paused(session: Session, principal: Principal, rule_id: int, paused: bool) -> WorkflowRule:
    return update_rule(session, principal, rule_id, {"paused": paused})


def delete_rule(session: Session, principal: Principal, rule_id: int) -> None:
    require_admin(principal)
    session.delete(get_rule(session, principal, rule_id))
    session.flush()


def _custom_values(session: Session, principal: Principal, keys: set[str], lead_ids: list[int]) -> dict[int, dict[str, object]]:
    """lead id → {custom key: value}, for the custom fields the template names only."""
    out: dict[int, dict[str, object]] = {}
    if not keys:
        return out
    for chunk in id_chunks(session, lead_ids):
        rows = session.execute(
            select(CustomValue.lead_id, CustomField.key, CustomField.type, CustomValue.text_value, CustomValue.number_value, CustomValue.date_value)
            .join(CustomField, CustomField.id == CustomValue.field_id)
            .where(CustomField.organisation_id == principal.organisation_id, CustomField.key.in_(sorted(keys)), among(session, CustomValue.lead_id, chunk))
        )
        for lead_id, key, type_, text, number, day in rows:
            out.setdefault(lead_id, {})[key] = number if type_ == "number" else (day.isoformat() if day else text)
    return out


def plan(session: Session, principal: Principal, rule: WorkflowRule, lead_ids: Sequence[int], *, now: datetime | None = None) -> Plan:
    """Whom `rule` mails among `lead_ids` (the conditions applied in SQL), with the rendered
    mail each, and the matching leads it skips with the reason. Writes nothing."""
    template = session.get(MailTemplate, rule.template_id)
    assert template is not None  # RESTRICT: a template in use is never deleted
    not_before = (now or utcnow()) + timedelta(minutes=rule.delay_minutes) if rule.delay_minutes else None
    return plan_template(session, principal, template, stored_conditions(rule), lead_ids, key=f"rule:{rule.id}", not_before=not_before)


def plan_template(
    session: Session, principal: Principal, template: MailTemplate, conditions: f.Filter | None, lead_ids: Sequence[int], *, key: str, not_before: datetime | None
) -> Plan:
    """`template` rendered for each of `lead_ids` matching `conditions`, one mail per
    normalised address (the leads without one, or with an address already planned, are
    skipped with the reason). Writes nothing."""
    matched = views.matching_ids(session, principal, conditions, lead_ids)
    compiled = t.Template.parse(template.subject, template.text_body, template.html_body)
    # Only the fields the template names are read and merged (a batch is thousands of leads).
    wanted = [name for name in LEAD_FIELDS if f"lead.{name}" in compiled.names]
    custom = _custom_values(session, principal, {n.removeprefix("lead.custom.") for n in compiled.names if n.startswith("lead.custom.")}, matched)
    out = Plan()
    seen: set[str] = set()
    columns = [getattr(Lead, name) for name in wanted]
    for chunk in id_chunks(session, matched):
        for lead_id, email, norm, *values in session.execute(select(Lead.id, Lead.email, Lead.email_norm, *columns).where(among(session, Lead.id, chunk)).order_by(Lead.id)):
            norm = norm or (normalise_email(email) if email else None)
            if not norm:
                out.skipped.append(Skipped(lead_id, email, "no_address", key))
            elif norm in seen:
                out.skipped.append(Skipped(lead_id, email, "duplicate_address", key))
            else:
                seen.add(norm)
                mail = compiled.render(t.lead_values(dict(zip(wanted, values, strict=True)), custom.get(lead_id, {})))
                out.mails.append(PlannedMail(key, lead_id, email, mail, template.charset, not_before))
    return out


def active_rules(session: Session, principal: Principal, source: str) -> list[WorkflowRule]:
    rules = session.scalars(select(WorkflowRule).where(WorkflowRule.organisation_id == principal.organisation_id, WorkflowRule.paused.is_(False)).order_by(WorkflowRule.id))
    return [r for r in rules if source in (r.sources or [])]


def dry_run(session: Session, principal: Principal, rule_id: int, lead_ids: Sequence[int] | None = None, *, limit: int = 1000) -> Plan:
    """What the rule would do for `lead_ids`, or else for the organisation's latest `limit`
    leads of its sources. Enqueues nothing."""
    rule = get_rule(session, principal, rule_id)
    if lead_ids is None:
        lead_ids = list(
            session.scalars(
                select(Lead.id).where(Lead.organisation_id == principal.organisation_id, Lead.source.in_(list(rule.sources or []))).order_by(Lead.id.desc()).limit(limit)
            )
        )
    planned = plan(session, principal, rule, lead_ids)
    keys = [m.dedupe_key for m in planned.mails]
    # A mail of this (rule, lead) in the outbox already: mailed, or skipped there for a reason.
    done: dict[str | None, str] = {}
    if keys:
        earlier = select(OutboxMail.dedupe_key, OutboxMail.status, OutboxMail.reason).where(OutboxMail.organisation_id == principal.organisation_id, OutboxMail.dedupe_key.in_(keys))
        done = {key: (reason or "skipped") if status == "skipped" else "already_mailed" for key, status, reason in session.execute(earlier)}
    norms = {m.lead_id: normalise_email(m.to_address) for m in planned.mails}
    suppressed: dict[str, str] = {}
    if planned.mails:
        query = select(MailSuppression.address_norm, MailSuppression.reason).where(
            MailSuppression.organisation_id == principal.organisation_id, MailSuppression.address_norm.in_([n for n in norms.values() if n])
        )
        suppressed = {norm: reason for norm, reason in session.execute(query)}
    out = Plan(skipped=list(planned.skipped))
    for mail in planned.mails:
        reason = done.get(mail.dedupe_key) or suppressed.get(norms[mail.lead_id] or "")
        if reason:
            out.skipped.append(Skipped(mail.lead_id, mail.to_address, reason))
        else:
            out.mails.append(mail)
    return out


@dataclass
class FireReport:
    """What the rules did with a batch of new leads, per rule id: outbox statuses counted
    ("queued", "skipped", "duplicate") plus the plan's own skips by reason."""

    per_rule: dict[int, dict[str, int]] = field(default_factory=dict)


def on_leads_created(session: Session, principal: Principal, lead_ids: Sequence[int], source: str, *, now: datetime | None = None) -> FireReport:
    """Run the organisation's active rules of `source` over the new leads: one SQL query per
    rule selects the matching ones, and their mails are queued in one outbox batch per rule
    (the outbox drops a second mail to one address in the batch, and a second mail of the
    same (rule, lead) ever)."""
    report = FireReport()
    if not lead_ids:
        return report
    at = now or utcnow()
    for rule in active_rules(session, principal, source):
        planned = plan(session, principal, rule, lead_ids, now=at)
        report.per_rule[rule.id] = queue_plan(session, principal, planned, kind="rule", source_id=rule.id, now=at)
    return report


def queue_plan(session: Session, principal: Principal, planned: Plan, *, kind: str, source_id: int, now: datetime) -> dict[str, int]:
    """Queue a plan's mails in one outbox batch; the leads it skips get their row too (no
    mail), with the reason, so that per lead and per rule (or send) the statuses say why
    nothing was sent. Returns the outbox statuses of the mails counted ("queued", "skipped",
    "duplicate") plus the plan's skips by reason."""
    counts: dict[str, int] = {}
    for skip in planned.skipped:
        counts[skip.reason] = counts.get(skip.reason, 0) + 1
    requests = [
        outbox.MailRequest(
            to_address=m.to_address, subject=m.mail.subject, text=m.mail.text, html=m.mail.html, charset=m.charset,
            lead_id=m.lead_id, source_id=source_id, dedupe_key=m.dedupe_key, not_before=m.not_before,
        )
        for m in planned.mails
    ]
    requests += [
        outbox.MailRequest(
            to_address=(skip.email or "")[:320], subject="", text="", lead_id=skip.lead_id, source_id=source_id,
            dedupe_key=f"{skip.key}:lead:{skip.lead_id}" if skip.key else None, skip_reason=skip.reason,
        )
        for skip in planned.skipped
    ]
    results = outbox.enqueue_many(session, organisation_id=principal.organisation_id, kind=kind, mails=requests, now=now)
    for result in results[: len(planned.mails)]:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts
