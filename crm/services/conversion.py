"""Lead conversion (見込み客の変換): a lead becomes a contact under an account (an existing one
the preview matched, or a new one), and optionally a deal — all in one transaction."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.domain.rules import email_domain, is_free_mail, normalise_email, normalise_unique_value
from crm.services import custom_fields, timeline
from crm.services.leads import get_lead
from crm.services.organisations import require_admin
from crm.store.campaigns import ConversionSettings, Deal, LeadConversion
from crm.store.models import Account, Contact, Lead

_LEGAL = re.compile(
    r"(株式会社|有限会社|合同会社|合資会社|合名会社|一般社団法人|一般財団法人|医療法人|\(株\)|㈱|（株）|\b(inc|incorporated|llc|ltd|limited|co|corp|corporation|gmbh|ag|kk|k\.k|plc|sas|s\.a)\b\.?)",
    re.I,
)


def company_key(name: str | None) -> str:
    """Comparable company name: "株式会社 山田商事" = "山田商事㈱" = "(株)山田商事"; "Acme, Inc." = "ACME"."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name)
    text = _LEGAL.sub("", text)
    return re.sub(r"[\s,.\-・'’&()（）]", "", text).casefold()


def _domain(lead: Lead) -> str | None:
    email = normalise_email(lead.email or "")
    return email_domain(email) if email and not is_free_mail(email) else None


def conversion_of(session: Session, lead_id: int) -> LeadConversion | None:
    return session.scalar(select(LeadConversion).where(LeadConversion.lead_id == lead_id))


def settings(session: Session, organisation_id: int) -> ConversionSettings:
    """The organisation's matching rules (the defaults when it never set any)."""
    return session.get(ConversionSettings, organisation_id) or ConversionSettings(organisation_id=organisation_id, match_company_name=True, match_email_domain=True, company_key_field=None)


def configure(session: Session, principal: Principal, *, match_company_name: bool, match_email_domain: bool, company_key_field: str | None) -> ConversionSettings:
    """Admin: which of company name, email domain and a custom company key make a match."""
    require_admin(principal)
    if company_key_field is not None:
        field = custom_fields.fields(session, principal).get(company_key_field)
        if field is None:
            raise InvalidInput(f"no custom field {company_key_field!r}")
        if field.type not in ("text", "picklist"):
            raise InvalidInput("a company key is a text or pick-list field")
    row = session.get(ConversionSettings, principal.organisation_id)
    if row is None:
        row = ConversionSettings(organisation_id=principal.organisation_id)
        session.add(row)
    row.match_company_name, row.match_email_domain, row.company_key_field = match_company_name, match_email_domain, company_key_field
    session.flush()
    return row


def settings_dict(row: ConversionSettings) -> dict[str, object]:
    return {"match_company_name": row.match_company_name, "match_email_domain": row.match_email_domain, "company_key_field": row.company_key_field}


def _company_key_value(session: Session, principal: Principal, rules: ConversionSettings, lead: Lead) -> str | None:
    """The lead's company key, normalised as unique values are, or None."""
    if not rules.company_key_field:
        return None
    value = custom_fields.values_of(session, principal, lead.id).get(rules.company_key_field)
    return normalise_unique_value("company_key", str(value)) if value is not None else None


def preview(session: Session, principal: Principal, lead_id: int) -> dict[str, object]:
    """Which existing accounts match the lead — by the organisation's rules: the same
    normalised company name, the same company key, the same email domain — so the user can
    link to one instead of making another."""
    lead = get_lead(session, principal, lead_id)
    rules = settings(session, principal.organisation_id)
    name = company_key(lead.company) if rules.match_company_name else ""
    key = _company_key_value(session, principal, rules, lead)
    domain = _domain(lead) if rules.match_email_domain else None
    conditions = [Account.name_norm == name] if name else []
    if key:
        conditions.append(Account.company_key == key)
    if domain:
        conditions.append(Account.email_domain == domain)
    matches = []
    if conditions:
        for account in session.scalars(select(Account).where(Account.organisation_id == principal.organisation_id, or_(*conditions)).order_by(Account.id).limit(20)):
            # The strongest reason first: a shared key is an identity, a name or domain a hint.
            reason = "company_key" if key and account.company_key == key else "company_name" if name and account.name_norm == name else "email_domain"
            matches.append({"account_id": account.id, "name": account.name, "reason": reason})
    done = conversion_of(session, lead.id)
    return {
        "lead_id": lead.id,
        "company": lead.company,
        "company_key": key,
        "matches": matches,
        "converted": _record(done) if done else None,
    }


def _record(c: LeadConversion) -> dict[str, object]:
    return {"lead_id": c.lead_id, "account_id": c.account_id, "contact_id": c.contact_id, "deal_id": c.deal_id, "converted_at": c.converted_at.isoformat()}


def convert(
    session: Session,
    principal: Principal,
    lead_id: int,
    *,
    account_id: int | None = None,
    create_deal: bool = False,
    deal_name: str | None = None,
    deal_amount: float | None = None,
) -> LeadConversion:
    """Convert in a savepoint: any failure midway leaves no account, contact or deal behind.
    Converting twice is refused with the record the lead already became."""
    lead = get_lead(session, principal, lead_id)
    done = conversion_of(session, lead.id)
    if done is not None:
        raise Conflict("the lead is already converted", existing_id=done.contact_id, field="lead", existing=_record(done), code="already_converted")
    if account_id is not None:
        account = session.get(Account, account_id)
        if account is None or account.organisation_id != principal.organisation_id:
            raise NotFound(f"no account {account_id}")
    if create_deal and not (deal_name or lead.company):
        raise InvalidInput("a deal needs a name")
    try:
        with session.begin_nested():
            if account_id is None:
                name = lead.company or " ".join(p for p in (lead.last_name, lead.first_name) if p) or (lead.email or "")
                key = _company_key_value(session, principal, settings(session, principal.organisation_id), lead)
                account = Account(organisation_id=principal.organisation_id, name=name, name_norm=company_key(name), website=lead.website, email_domain=_domain(lead), company_key=key)
                session.add(account)
                session.flush()
            contact = Contact(
                organisation_id=principal.organisation_id, account_id=account.id, lead_id=lead.id, first_name=lead.first_name, last_name=lead.last_name,
                email=lead.email, email_norm=lead.email_norm, title=lead.title, phone=lead.phone, mobile=lead.mobile,
            )
            session.add(contact)
            session.flush()
            deal = None
            if create_deal:
                deal = Deal(organisation_id=principal.organisation_id, account_id=account.id, contact_id=contact.id, name=deal_name or f"{lead.company} 案件", amount=deal_amount)
                session.add(deal)
                session.flush()
            conversion = LeadConversion(organisation_id=principal.organisation_id, lead_id=lead.id, account_id=account.id, contact_id=contact.id, deal_id=deal.id if deal else None, converted_by_id=principal.user_id)
            session.add(conversion)
            previous, lead.status = lead.status, "converted"
            session.flush()
            timeline.add_entry(session, lead, "status", summary=f"{previous} → converted", payload={"from": previous, "to": "converted", "contact_id": contact.id, "account_id": account.id}, user_id=principal.user_id)
            # The lead's history goes with it, in this savepoint: all of it or none.
            timeline.move_to_converted(session, lead, contact, account)
    except IntegrityError:
        done = conversion_of(session, lead.id)
        if done is not None:  # a concurrent request converted it first
            raise Conflict("the lead is already converted", existing_id=done.contact_id, field="lead", existing=_record(done), code="already_converted") from None
        raise Conflict("the conversion conflicts with a record saved at the same time") from None
    return conversion
