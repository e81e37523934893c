"""Web forms: an admin maps form fields to lead fields (custom ones included) with Japanese
and English labels; the public submission creates the lead, or updates the existing one the
duplicate rules find (never a second lead), runs the web-form workflow rules and queues the
form's auto-reply.

What a submitter sees never depends on whether their address was already a lead: every
check that can refuse a submission runs before the lead is looked up, and both ways end in
the same answer. Abuse limits (rate, honeypot, size) are the HTTP layer's; the token check
is crm.domain.form_tokens.
"""

from __future__ import annotations

import secrets as token_source
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.domain import form_tokens
from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.services import custom_fields, outbox, rules, timeline
from crm.services.leads import clean_values, create_lead, fill_empty_fields, get_lead, update_lead
from crm.services.organisations import LANGUAGES, require_admin
from crm.services.secrets import SecretBox
from crm.services.templates import get_template, render_for
from crm.store.automation import FormDuplicateSettings, WebForm
from crm.store.base import utcnow
from crm.store.models import Lead, User

MAX_FIELDS = 30
# What a submission does to the existing lead with its address (the organisation's setting;
# a form may pick its own): fill its empty fields, replace its values with the submitted
# ones (a blank answer clears nothing), or keep it untouched. Whichever, never a second lead
# and the same answer to the submitter; the submission is an entry of the lead's timeline.
DUPLICATE_POLICIES = ("fill", "replace", "keep")
FORM_DUPLICATE_POLICIES = ("inherit", *DUPLICATE_POLICIES)
DEFAULT_DUPLICATE_POLICY = "fill"


@dataclass(frozen=True)
class FormField:
    field: str  # a lead field, or custom:<key>
    label_ja: str
    label_en: str
    required: bool = False

    def label(self, language: str) -> str:
        return self.label_en if language == "en" else self.label_ja


def form_fields(form: WebForm) -> list[FormField]:
    return [FormField(**f) for f in form.fields or []]


def _check_fields(session: Session, principal: Principal, fields: list[FormField]) -> None:
    if not fields or len(fields) > MAX_FIELDS:
        raise InvalidInput(f"a form has 1 to {MAX_FIELDS} fields", field="fields")
    names = [f.field for f in fields]
    if len(set(names)) != len(names):
        raise InvalidInput("a lead field appears twice in the form", field="fields")
    defined = custom_fields.fields(session, principal)
    for f in fields:
        key = f.field.removeprefix("custom:") if f.field.startswith("custom:") else None
        if (key is None and f.field not in LEAD_FIELDS) or (key is not None and key not in defined):
            raise InvalidInput(f"unknown lead field {f.field!r}", field=f.field)
    if "email" not in names:
        raise InvalidInput("a form needs the email field (the auto-reply goes there)", field="fields")
    # A required custom field the form does not ask for would refuse every new lead, and
    # only new ones: the answer would tell new addresses from known ones.
    missing = [k for k, d in defined.items() if d.required and not any(f.field == f"custom:{k}" and f.required for f in fields)]
    if missing:
        raise InvalidInput(f"the required custom field {missing[0]!r} must be a required field of the form", field=f"custom:{missing[0]}")


def _apply(session: Session, principal: Principal, form: WebForm, values: Mapping[str, object]) -> None:
    if "name" in values:
        form.name = str(values["name"]).strip()
        if not form.name:
            raise InvalidInput("a form needs a name", field="name")
    if "language" in values:
        if values["language"] not in LANGUAGES:
            raise InvalidInput("language: ja or en", field="language")
        form.language = str(values["language"])
    if "on_duplicate" in values:
        if values["on_duplicate"] not in FORM_DUPLICATE_POLICIES:
            raise InvalidInput(f"on_duplicate: one of {', '.join(FORM_DUPLICATE_POLICIES)}", field="on_duplicate")
        form.on_duplicate = str(values["on_duplicate"])
    if "template_id" in values:
        template_id = values["template_id"]
        form.template_id = get_template(session, principal, template_id).id if template_id is not None else None  # type: ignore[arg-type]
    if "fields" in values:
        fields = [f if isinstance(f, FormField) else FormField(**f) for f in values["fields"]]  # type: ignore[attr-defined]
        _check_fields(session, principal, fields)
        form.fields = [{"field": f.field, "label_ja": f.label_ja, "label_en": f.label_en, "required": f.required} for f in fields]


def duplicate_policy(session: Session, organisation_id: int) -> str:
    """The organisation's policy for a submission whose address is already a lead's."""
    row = session.get(FormDuplicateSettings, organisation_id)
    return row.on_duplicate if row is not None else DEFAULT_DUPLICATE_POLICY


def set_duplicate_policy(session: Session, principal: Principal, policy: str) -> str:
    """Admin: the organisation's policy (forms with "inherit" follow it)."""
    require_admin(principal)
    if policy not in DUPLICATE_POLICIES:
        raise InvalidInput(f"on_duplicate: one of {', '.join(DUPLICATE_POLICIES)}", field="on_duplicate")
    row = session.get(FormDuplicateSettings, principal.organisation_id)
    if row is None:
        row = FormDuplicateSettings(organisation_id=principal.organisation_id)
        session.add(row)
    row.on_duplicate = policy
    session.flush()
    return policy


def effective_policy(session: Session, form: WebForm) -> str:
    return duplicate_policy(session, form.organisation_id) if form.on_duplicate == "inherit" else form.on_duplicate


def create_form(session: Session, principal: Principal, box: SecretBox, values: Mapping[str, object]) -> WebForm:
    """values: name, fields (FormField or dicts), language, template_id (auto-reply),
    on_duplicate ("inherit" by default)."""
    require_admin(principal)
    form = WebForm(
        organisation_id=principal.organisation_id, created_by_id=principal.user_id, key=token_source.token_urlsafe(16),
        secret_encrypted=box.encrypt(token_source.token_urlsafe(32)), language="ja", on_duplicate="inherit", fields=[],
    )
    _apply(session, principal, form, {"fields": [], **values})
    session.add(form)
    session.flush()
    return form


def get_form(session: Session, principal: Principal, form_id: int) -> WebForm:
    form = session.get(WebForm, form_id)
    if form is None or form.organisation_id != principal.organisation_id:
        raise NotFound(f"no form {form_id}")
    return form


def list_forms(session: Session, principal: Principal) -> list[WebForm]:
    return list(session.scalars(select(WebForm).where(WebForm.organisation_id == principal.organisation_id).order_by(WebForm.id)))


def update_form(session: Session, principal: Principal, form_id: int, values: Mapping[str, object]) -> WebForm:
    require_admin(principal)
    form = get_form(session, principal, form_id)
    with session.no_autoflush:
        try:
            _apply(session, principal, form, values)
        except Exception:
            session.expire(form)
            raise
    session.flush()
    return form


def delete_form(session: Session, principal: Principal, form_id: int) -> None:
    require_admin(principal)
    session.delete(get_form(session, principal, form_id))
    session.flush()


def public_form(session: Session, key: str) -> WebForm:
    form = session.scalar(select(WebForm).where(WebForm.key == key)) if 8 <= len(key) <= 64 else None
    if form is None:
        raise NotFound("no such form", code="form_not_found")
    return form


def issue_token(form: WebForm, box: SecretBox, now: float) -> str:
    return form_tokens.sign(box.decrypt(form.secret_encrypted), form.key, now)


def _acting_user(session: Session, form: WebForm) -> Principal:
    """Whom a submission acts as (the lead's owner): the form's author, else an admin."""
    user = session.get(User, form.created_by_id) if form.created_by_id else None
    if user is None or user.organisation_id != form.organisation_id:
        user = session.scalar(select(User).where(User.organisation_id == form.organisation_id).order_by(User.role != "admin", User.id))
    if user is None:
        raise NotFound("no such form", code="form_not_found")
    return Principal(user.id, form.organisation_id, user.email, "member", form.language)


@dataclass(frozen=True)
class Submission:
    """What happened (for the server's tests and logs; never shown to the submitter).
    `policy`: the duplicate policy applied to an existing lead (None: a new lead);
    `changed`: the fields it changed (custom ones as custom:<key>)."""

    lead_id: int
    created: bool
    auto_reply: str | None  # the outbox status, or None without a template
    policy: str | None = None
    changed: tuple[str, ...] = ()


def submit(session: Session, form: WebForm, box: SecretBox, data: Mapping[str, str], token: str | None, *, now: datetime | None = None) -> Submission:
    """A public submission of `form`: `data` by the form's field names."""
    at = now or utcnow()
    form_tokens.check(box.decrypt(form.secret_encrypted), form.key, token, at.timestamp())
    fields = form_fields(form)
    principal = _acting_user(session, form)
    standard: dict[str, object] = {}
    custom: dict[str, str] = {}
    defined = custom_fields.fields(session, principal)
    for f in fields:
        if f.field.startswith("custom:") and f.field.removeprefix("custom:") not in defined:
            continue  # a field the organisation no longer has
        value = (data.get(f.field) or "").strip()
        if f.required and not value:
            raise InvalidInput(f"{f.label(form.language)} is required", code="required_field", field=f.field)
        if f.field.startswith("custom:"):
            if value:
                custom[f.field.removeprefix("custom:")] = value
        else:
            standard[f.field] = value or None
    clean = clean_values(standard)  # every refusal happens before the lead is looked up
    if not clean.get("email"):
        raise InvalidInput("an email address is required", code="required_field", field="email")
    for key, value in custom.items():
        custom_fields.typed_value(defined[key], value)
    lead, created = _existing_by_email(session, principal, clean), False
    if lead is None:
        try:
            with session.begin_nested():
                lead = create_lead(session, principal, clean, source="web_form")
                custom_fields.set_values(session, principal, lead.id, custom, creating=True)
            created = True
        except Conflict as exc:  # another unique field (a phone number), or a concurrent submission
            if exc.existing_id is None:
                raise
            lead = get_lead(session, principal, exc.existing_id)
    policy, changed = (None, ()) if created else _apply_policy(session, principal, effective_policy(session, form), lead, clean, custom)
    if created:
        rules.on_leads_created(session, principal, [lead.id], "web_form", now=at)
    _on_timeline(session, form, lead, at, clean, custom, policy, changed)
    return Submission(lead.id, created, _auto_reply(session, principal, form, lead, at), policy, changed)


def _existing_by_email(session: Session, principal: Principal, clean: Mapping[str, object]) -> Lead | None:
    """The lead with the submitted address, even where the organisation lets two leads share
    one (unique email turned off): a form never makes a second lead of the same person."""
    norm = normalise_email(str(clean["email"]))
    if norm is None:
        return None
    return session.scalar(select(Lead).where(Lead.organisation_id == principal.organisation_id, Lead.email_norm == norm).order_by(Lead.id).limit(1))


def _apply_policy(
    session: Session, principal: Principal, policy: str, lead: Lead, clean: Mapping[str, object], custom: Mapping[str, str]
) -> tuple[str, tuple[str, ...]]:
    if policy == "keep":
        return policy, ()
    if policy == "replace":
        return policy, _replace(session, principal, lead, clean, custom)
    return policy, _merge(session, principal, lead, clean, custom)


def _merge(session: Session, principal: Principal, lead: Lead, clean: Mapping[str, object], custom: Mapping[str, str]) -> tuple[str, ...]:
    """Fill the existing lead's empty fields; a value another lead holds under a unique rule
    is left out rather than refused (the answer must not differ)."""
    filled: tuple[str, ...] = ()
    try:
        with session.begin_nested():
            filled = fill_empty_fields(session, principal, lead, clean)
    except Conflict:
        pass
    have = custom_fields.values_of(session, principal, lead.id)
    return filled + _set_custom(session, principal, lead, {k: v for k, v in custom.items() if have.get(k) in (None, "")})


def _replace(session: Session, principal: Principal, lead: Lead, clean: Mapping[str, object], custom: Mapping[str, str]) -> tuple[str, ...]:
    """The submitted values win over the lead's; a field left blank clears nothing. A value
    another lead holds under a unique rule is left out (tried field by field), as in _merge."""
    wanted = {name: value for name, value in clean.items() if value and value != getattr(lead, name)}
    if "email" in wanted and normalise_email(str(wanted["email"])) == lead.email_norm:
        del wanted["email"]  # the same address written differently: not a change
    changed: tuple[str, ...] = ()
    try:
        with session.begin_nested():
            update_lead(session, principal, lead.id, wanted)
        changed = tuple(wanted)
    except Conflict:
        for name, value in wanted.items():
            try:
                with session.begin_nested():
                    update_lead(session, principal, lead.id, {name: value})
                changed += (name,)
            except Conflict:
                pass
    have = custom_fields.values_of(session, principal, lead.id)
    return changed + _set_custom(session, principal, lead, {k: v for k, v in custom.items() if have.get(k) != v})


def _set_custom(session: Session, principal: Principal, lead: Lead, values: Mapping[str, str]) -> tuple[str, ...]:
    if not values:
        return ()
    try:
        with session.begin_nested():
            custom_fields.set_values(session, principal, lead.id, dict(values))
    except Conflict:
        return ()
    return tuple(f"custom:{k}" for k in values)


def _on_timeline(
    session: Session, form: WebForm, lead: Lead, at: datetime, clean: Mapping[str, object], custom: Mapping[str, str], policy: str | None, changed: tuple[str, ...]
) -> None:
    """The submission on the lead's timeline (the contact's once converted) with what was
    submitted, so that a "keep" policy still shows what the person asked."""
    submitted = {name: value for name, value in clean.items() if value} | {f"custom:{k}": v for k, v in custom.items()}
    timeline.add_entry(
        session, timeline.person_of_lead(session, form.organisation_id, lead.id), "form_submission", at=at, summary=form.name,
        payload={"form_id": form.id, "created": policy is None, "policy": policy, "changed": list(changed), "submitted": submitted},
    )


def _auto_reply(session: Session, principal: Principal, form: WebForm, lead: Lead, now: datetime) -> str | None:
    if form.template_id is None or not lead.email:
        return None
    template = get_template(session, principal, form.template_id)
    mail = render_for(template, {name: getattr(lead, name) for name in LEAD_FIELDS}, custom_fields.values_of(session, principal, lead.id))
    # One auto-reply per address, form and day: a form posted again and again with someone
    # else's address cannot be used to flood them.
    key = f"form:{form.id}:{normalise_email(lead.email) or lead.email}:{now.date().isoformat()}"
    result = outbox.enqueue(
        session, organisation_id=form.organisation_id, kind="form_reply", to_address=lead.email, subject=mail.subject, text=mail.text, html=mail.html,
        charset=template.charset, lead_id=lead.id, source_id=form.id, dedupe_key=key, now=now,
    )
    return result.status
