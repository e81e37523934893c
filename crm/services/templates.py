"""Mail templates of an organisation: admins write them, everyone reads them. Merge fields
are checked against the lead fields and the organisation's custom fields when a template is
saved (crm.domain.templates)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm.domain import templates as t
from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.services import custom_fields
from crm.services.organisations import LANGUAGES, require_admin
from crm.store.automation import MailTemplate, WebForm, WorkflowRule

EDITABLE = ("name", "language", "subject", "text_body", "html_body", "charset")


def _check(session: Session, principal: Principal, template: MailTemplate) -> None:
    if not template.name.strip():
        raise InvalidInput("a template needs a name", field="name")
    if template.language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    if template.charset not in t.CHARSETS:
        raise InvalidInput(f"charset must be one of {', '.join(t.CHARSETS)}", field="charset")
    if any(ch in template.subject for ch in "\r\n"):
        raise InvalidInput("the subject is one line", field="subject")
    unknown = t.unknown_fields((template.subject, template.text_body, template.html_body), custom_fields.fields(session, principal))
    if unknown:
        raise InvalidInput(f"unknown merge field {{{{{unknown[0]}}}}}", code="unknown_merge_field", field=unknown[0])
    if template.charset == "iso-2022-jp":
        for part in (template.subject, template.text_body):
            try:
                part.encode("iso-2022-jp")
            except UnicodeEncodeError:
                raise InvalidInput("the text has characters ISO-2022-JP cannot hold: use utf-8", field="charset") from None


def _unique_name(session: Session, principal: Principal, name: str, ignore: int | None = None) -> None:
    other = session.scalar(select(MailTemplate.id).where(MailTemplate.organisation_id == principal.organisation_id, MailTemplate.name == name))
    if other is not None and other != ignore:
        raise Conflict(f"a template named {name!r} exists", existing_id=other, field="name")


def create_template(session: Session, principal: Principal, values: Mapping[str, object]) -> MailTemplate:
    require_admin(principal)
    template = MailTemplate(organisation_id=principal.organisation_id, **{k: values[k] for k in EDITABLE if k in values})
    template.language = template.language or "ja"
    template.charset = template.charset or "utf-8"
    _check(session, principal, template)
    _unique_name(session, principal, template.name)
    session.add(template)
    session.flush()
    return template


def get_template(session: Session, principal: Principal, template_id: int) -> MailTemplate:
    template = session.get(MailTemplate, template_id)
    if template is None or template.organisation_id != principal.organisation_id:
        raise NotFound(f"no template {template_id}")
    return template


def list_templates(session: Session, principal: Principal) -> list[MailTemplate]:
    return list(session.scalars(select(MailTemplate).where(MailTemplate.organisation_id == principal.organisation_id).order_by(MailTemplate.id)))


def update_template(session: Session, principal: Principal, template_id: int, values: Mapping[str, object]) -> MailTemplate:
    require_admin(principal)
    template = get_template(session, principal, template_id)
    with session.no_autoflush:
        for key in EDITABLE:
            if key in values:
                setattr(template, key, values[key])
        try:
            _check(session, principal, template)
            _unique_name(session, principal, template.name, ignore=template.id)
        except Exception:
            session.expire(template)
            raise
    session.flush()
    return template


def delete_template(session: Session, principal: Principal, template_id: int) -> None:
    require_admin(principal)
    template = get_template(session, principal, template_id)
    rule = session.scalar(select(WorkflowRule.id).where(WorkflowRule.template_id == template.id).limit(1))
    if rule is not None:
        raise Conflict(f"rule {rule} sends this template: delete or change the rule first", existing_id=rule, code="template_in_use")
    session.execute(update(WebForm).where(WebForm.template_id == template.id).values(template_id=None).execution_options(synchronize_session=False))
    session.delete(template)
    session.flush()


def render_for(template: MailTemplate, standard: Mapping[str, object], custom: Mapping[str, object]) -> t.RenderedMail:
    return t.render(template.subject, template.text_body, template.html_body, t.lead_values(standard, custom))
