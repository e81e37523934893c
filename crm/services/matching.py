"""Who the open mail's sender is in the CRM: every lead and contact with the address, and
the account of its company domain (never a free-mail or the organisation's own domain);
finding a record by name, company, email or phone; filling a matched record's empty fields.

Several matches are all returned, in a fixed order (leads, contacts, accounts; oldest
first): the rep chooses, nothing is chosen for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import literal, select, union_all
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput
from crm.domain.leads import checked_values
from crm.domain.principal import Principal
from crm.domain.rules import email_domain, is_free_mail, normalise_email
from crm.domain.search import MAX_QUERY, SEPARATOR, query_needle
from crm.services import leads, timeline
from crm.store.campaigns import Campaign, CampaignMember, CampaignStatus, LeadConversion
from crm.store.models import Account, Contact, Lead, Organisation, User

RECENT = 5
MAX_MATCHES = 20
# What the panel shows of each kind of record, and what "update empty fields" may fill.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "lead": ("first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "city", "status"),
    "contact": ("first_name", "last_name", "email", "title", "phone", "mobile"),
    "account": ("name", "website", "email_domain"),
}
FILLABLE: dict[str, tuple[str, ...]] = {"contact": ("first_name", "last_name", "email", "title", "phone", "mobile"), "account": ("website",)}
MODELS: dict[str, type[Lead] | type[Contact] | type[Account]] = {"lead": Lead, "contact": Contact, "account": Account}

Record = Lead | Contact | Account


def _title(record: Record) -> str:
    if isinstance(record, Account):
        return record.name
    name = " ".join(p for p in (record.last_name, record.first_name) if p)
    return name or record.email or ""


def _owner(session: Session, record: Record) -> dict[str, Any] | None:
    lead = record if isinstance(record, Lead) else session.get(Lead, record.lead_id) if isinstance(record, Contact) and record.lead_id else None
    if lead is None or lead.owner_id is None:
        return None
    user = session.get(User, lead.owner_id)
    return {"id": user.id, "name": user.name, "email": user.email} if user else None


def _campaigns(session: Session, record: Record) -> list[dict[str, Any]]:
    """A lead's campaigns; a contact keeps those of the lead it was converted from."""
    lead_id = record.id if isinstance(record, Lead) else record.lead_id if isinstance(record, Contact) else None
    if lead_id is None:
        return []
    rows = session.execute(
        select(Campaign.id, Campaign.name, CampaignStatus.name)
        .join(CampaignMember, CampaignMember.campaign_id == Campaign.id)
        .join(CampaignStatus, CampaignStatus.id == CampaignMember.status_id)
        .where(CampaignMember.lead_id == lead_id, Campaign.organisation_id == record.organisation_id)
        .order_by(Campaign.id)
    )
    return [{"id": cid, "name": name, "status": status} for cid, name, status in rows]


def record_out(session: Session, principal: Principal, record: Record, *, reason: str | None = None, recent: bool = True) -> dict[str, Any]:
    """A record as the panel shows it: key fields, owner, campaigns, the last five entries
    (a search's list has the key fields only: `recent` False, owner and campaigns None)."""
    kind = timeline.ref_of(record).type
    out: dict[str, Any] = {
        "type": kind, "id": record.id, "title": _title(record), "reason": reason,
        "fields": {name: getattr(record, name) for name in KEY_FIELDS[kind]},
        "owner": _owner(session, record) if recent else None, "campaigns": _campaigns(session, record) if recent else [],
    }
    if isinstance(record, Contact):
        out["account_id"] = record.account_id
    if recent:
        entries, _next = timeline.page(session, principal, kind, record.id, limit=RECENT)
        out["timeline"] = [timeline.entry_out(e) for e in entries]
    return out


def matches(session: Session, principal: Principal, email: str) -> list[dict[str, Any]]:
    """Every record of the organisation the address matches: leads and contacts by the
    address, accounts by its domain. A converted lead is not listed beside its contact."""
    norm = normalise_email(email)
    if not norm:
        raise InvalidInput("not an email address", code="invalid_email")
    org = principal.organisation_id
    contacts = list(session.scalars(select(Contact).where(Contact.organisation_id == org, Contact.email_norm == norm).order_by(Contact.id).limit(MAX_MATCHES)))
    became = set(session.scalars(select(LeadConversion.lead_id).where(LeadConversion.contact_id.in_([c.id for c in contacts])))) if contacts else set()
    found: list[tuple[Record, str]] = [
        (lead, "email")
        for lead in session.scalars(select(Lead).where(Lead.organisation_id == org, Lead.email_norm == norm).order_by(Lead.id).limit(MAX_MATCHES))
        if lead.id not in became
    ]
    found += [(c, "email") for c in contacts]
    domain = email_domain(norm)
    own = session.get(Organisation, org)
    if not is_free_mail(domain) and domain not in {d.lower() for d in (own.mail_domains if own else [])}:
        found += [(a, "domain") for a in session.scalars(select(Account).where(Account.organisation_id == org, Account.email_domain == domain).order_by(Account.id).limit(MAX_MATCHES))]
    return [record_out(session, principal, record, reason=reason) for record, reason in found]


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(session: Session, principal: Principal, q: str, types: Iterable[str], *, limit: int = 20, offset: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """Records whose search key holds the folded query (crm.domain.search), a page of them
    by type then id, and whether more follow. The test runs in SQL on the stored key."""
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"a search is at most {MAX_QUERY} characters", code="query_too_long")
    needle = query_needle(q)
    if len(needle) < 2 or SEPARATOR in needle:
        raise InvalidInput("search for at least two characters", code="query_too_short")
    wanted = [t for t in MODELS if t in set(types)]
    if not wanted:
        raise InvalidInput("types: one or more of lead, contact, account")
    pattern = _like(needle)
    org = principal.organisation_id
    # One statement over the three tables: (type's position, id) pages across types.
    parts = [
        select(literal(position).label("t"), MODELS[kind].id.label("id")).where(MODELS[kind].organisation_id == org, MODELS[kind].search_key.like(pattern, escape="\\"))
        for position, kind in enumerate(wanted)
    ]
    ids = union_all(*parts).subquery()
    rows = session.execute(select(ids.c.t, ids.c.id).order_by(ids.c.t, ids.c.id).limit(limit + 1).offset(offset)).all()
    loaded: dict[tuple[int, int], Record] = {}
    for position, kind in enumerate(wanted):  # one query per type, not one per row
        page_ids = [record_id for t, record_id in rows[:limit] if t == position]
        if page_ids:
            model = MODELS[kind]
            loaded.update(((position, r.id), r) for r in session.scalars(select(model).where(model.id.in_(page_ids))))
    records = [loaded[(t, record_id)] for t, record_id in rows[:limit] if (t, record_id) in loaded]
    return [record_out(session, principal, r, recent=False) for r in records], len(rows) > limit


def fill_empty(session: Session, principal: Principal, record_type: str, record_id: int, values: Mapping[str, object]) -> tuple[Record, tuple[str, ...], tuple[str, ...]]:
    """Copy the draft's values into the record's empty fields only; returns (record, filled,
    kept): `kept` names the fields the draft had a value for that the record already holds
    (never overwritten). Values pass the lead check every writer passes; a lead's unique
    fields are enforced as on every lead write."""
    record = timeline.get_record(session, principal, record_type, record_id)
    clean = checked_values(values)
    offered = [name for name, value in clean.items() if value]
    if isinstance(record, Lead):
        filled = leads.fill_empty_fields(session, principal, record, values)
    else:
        allowed = FILLABLE[record_type]
        filled = tuple(name for name in offered if name in allowed and not getattr(record, name))
        for name in filled:
            setattr(record, name, clean[name])
        if isinstance(record, Contact) and "email" in filled:
            record.email_norm = normalise_email(record.email or "")
        session.flush()
    fields = KEY_FIELDS[record_type] if not isinstance(record, Lead) else tuple(clean)
    kept = tuple(name for name in offered if name not in filled and name in fields and getattr(record, name, None))
    return record, filled, kept
