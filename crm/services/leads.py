"""Leads: create (duplicate-checked by the database), save from a draft, fill an existing
lead's empty fields, read and list.

Uniqueness is enforced by `lead_unique_keys` (one row per lead and unique field, holding the
normalised value, under a unique constraint): the check before the insert gives the user a
clean answer with the existing record, and the constraint refuses the loser of a race that
slipped past the check. "One capture per message" works the same way with
`message_captures`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, Row, bindparam, cast, func, literal, null, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.leads import CONVERTED, LEAD_STATUSES, checked_values
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email, normalise_unique_value
from crm.services import timeline
from crm.store.db import connection_of
from crm.store.models import Contact, FieldSetting, Lead, LeadUniqueKey, MessageCapture

DEFAULT_UNIQUE = frozenset({"email"})
LEAD_SOURCES = ("widget", "api", "csv_import", "web_form")


@dataclass(frozen=True)
class SaveResult:
    """outcome: "created", "already_captured" (this message made `lead` before) or
    "updated" (empty fields of an existing lead filled: `filled` names them)."""

    lead: Lead
    outcome: str
    filled: tuple[str, ...] = ()


def lead_summary(lead: Lead) -> dict[str, object]:
    """The record as a 409 answer and the draft's `existing` list show it."""
    out: dict[str, object] = {"kind": "lead", "id": lead.id}
    out.update({name: getattr(lead, name) for name in LEAD_FIELDS})
    out["status"] = lead.status
    return out


def clean_values(values: Mapping[str, object]) -> dict[str, str | None]:
    """Only known fields, each passing crm.domain.leads (InvalidInput otherwise); strings
    trimmed; blanks become None (a blank never clashes). Every writer of leads calls this."""
    return checked_values(values)


def unique_fields(session: Session, organisation_id: int) -> frozenset[str]:
    rows = session.execute(select(FieldSetting.field, FieldSetting.unique).where(FieldSetting.organisation_id == organisation_id)).all()
    if not rows:
        return DEFAULT_UNIQUE
    return frozenset(field for field, unique in rows if unique)


def _keys(session: Session, organisation_id: int, values: Mapping[str, str | None], only: Iterable[str] | None = None) -> list[tuple[str, str]]:
    fields = unique_fields(session, organisation_id)
    if only is not None:
        fields = fields & set(only)
    keys = []
    for name in sorted(fields):
        norm = normalise_unique_value(name, values.get(name))
        if norm:
            keys.append((name, norm))
    return keys


def _refuse_duplicates(session: Session, organisation_id: int, keys: list[tuple[str, str]], *, ignore_lead: int | None = None) -> None:
    for name, norm in keys:
        query = select(LeadUniqueKey.lead_id).where(
            LeadUniqueKey.organisation_id == organisation_id, LeadUniqueKey.field == name, LeadUniqueKey.value_norm == norm
        )
        lead_id = session.scalar(query)
        if lead_id is not None and lead_id != ignore_lead:
            existing = session.get(Lead, lead_id)
            raise Conflict(
                f"a lead with this {name} already exists",
                existing_id=lead_id,
                field=name,
                existing=lead_summary(existing) if existing else None,
            )


# The draft runs these on every message opened: built once, a statement memoizes its cache
# key, and building one cost more CPU than SQLite's answer (see crm.services.organisations).
_CAPTURED = select(MessageCapture.lead_id).where(MessageCapture.organisation_id == bindparam("org"), MessageCapture.message_key == bindparam("key"))
# The leads and the contacts of an address in ONE statement (plain columns, leads first):
# the draft looks them up for every message opened, and a statement costs more CPU than
# SQLite's answer. A contact's row leaves the lead-only columns empty (typed NULLs:
# PostgreSQL types a bare NULL of a subquery as text, which no integer column unites with).
_CONTACT_COLUMNS = ("first_name", "last_name", "email")
_LEADS_OF_EMAIL = (
    select(literal(0).label("ord"), Lead.id, *(getattr(Lead, n) for n in LEAD_FIELDS), Lead.status, cast(null(), Integer).label("account_id"))
    .where(Lead.organisation_id == bindparam("org"), Lead.email_norm == bindparam("norm"))
    .limit(20)
    .subquery()
)
_CONTACTS_OF_EMAIL = (
    select(
        literal(1).label("ord"),
        Contact.id,
        *(getattr(Contact, n) if n in _CONTACT_COLUMNS else cast(null(), getattr(Lead, n).type).label(n) for n in LEAD_FIELDS),
        cast(null(), Lead.status.type).label("status"),
        Contact.account_id,
    )
    .where(Contact.organisation_id == bindparam("org"), Contact.email_norm == bindparam("norm"))
    .limit(20)
    .subquery()
)
_RECORDS_OF_EMAIL = union_all(select(_LEADS_OF_EMAIL), select(_CONTACTS_OF_EMAIL)).order_by("ord")
# The draft's two lookups in one statement: the message's capture (its lead's id, every
# other column empty; at most one, the key is unique in the organisation) after the records.
_CAPTURE_ROW = (
    select(
        literal(2).label("ord"),
        MessageCapture.lead_id.label("id"),
        *(cast(null(), getattr(Lead, n).type).label(n) for n in LEAD_FIELDS),
        cast(null(), Lead.status.type).label("status"),
        cast(null(), Integer).label("account_id"),
    )
    .where(MessageCapture.organisation_id == bindparam("org"), MessageCapture.message_key == bindparam("key"))
    .subquery()
)
_CAPTURE_AND_RECORDS = union_all(select(_LEADS_OF_EMAIL), select(_CONTACTS_OF_EMAIL), select(_CAPTURE_ROW)).order_by("ord")


def captured_lead(db: Session | Connection, principal: Principal, message_key: str | None) -> Lead | None:
    """The lead captured from the message, on a session or a plain (read-only) connection."""
    if not message_key:
        return None
    # Plain columns, on the session's connection: no ORM execution layer (see authenticate).
    # Flushed first, as the ORM's autoflush would: a capture added in this session is seen
    # (nothing is sent when nothing is pending). A plain connection has nothing pending.
    if isinstance(db, Session):
        db.flush()
    lead_id = connection_of(db).scalar(_CAPTURED, {"org": principal.organisation_id, "key": message_key})
    return _lead_of(db, lead_id) if lead_id else None


def _lead_of(db: Session | Connection, lead_id: int) -> Lead | None:
    if isinstance(db, Session):
        return db.get(Lead, lead_id)
    # The ORM's lead as a session loads it, through a session on that connection (in its
    # transaction: the same snapshot as the capture); closing it leaves the connection's
    # transaction alone, and the lead keeps its loaded columns.
    with Session(bind=db) as own:
        return own.get(Lead, lead_id)


def _link_capture(session: Session, principal: Principal, lead: Lead, message_key: str | None) -> None:
    if message_key:
        session.add(MessageCapture(organisation_id=principal.organisation_id, message_key=message_key, lead_id=lead.id, user_id=principal.user_id))


def create_lead(
    session: Session, principal: Principal, values: Mapping[str, object], *, source: str = "api", message_key: str | None = None
) -> Lead:
    """A new lead, or Conflict naming the existing lead that holds a unique value.

    Nothing is written when it fails: the inserts run in a savepoint that is rolled back.
    """
    if source not in LEAD_SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(LEAD_SOURCES)}")
    clean = clean_values(values)
    org = principal.organisation_id
    keys = _keys(session, org, clean)
    _refuse_duplicates(session, org, keys)
    try:
        with session.begin_nested():
            lead = Lead(organisation_id=org, owner_id=principal.user_id, created_by_id=principal.user_id, source=source, **clean)
            lead.email_norm = normalise_email(clean["email"]) if clean["email"] else None
            session.add(lead)
            session.flush()
            session.add_all(LeadUniqueKey(organisation_id=org, lead_id=lead.id, field=name, value_norm=norm) for name, norm in keys)
            _link_capture(session, principal, lead, message_key)
            session.flush()
    except IntegrityError:
        # Another request won a race past the checks above: say who won.
        _refuse_duplicates(session, org, keys)
        raise Conflict("the lead conflicts with a record saved at the same time", code="duplicate") from None
    return lead


def get_lead(session: Session, principal: Principal, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None or lead.organisation_id != principal.organisation_id:
        raise NotFound(f"no lead {lead_id}")
    return lead


def fill_empty_fields(session: Session, principal: Principal, lead: Lead, values: Mapping[str, object]) -> tuple[str, ...]:
    """Copy into `lead` only the values of fields it has empty; returns the filled names."""
    clean = clean_values(values)
    filled = tuple(name for name in LEAD_FIELDS if clean[name] and not getattr(lead, name))
    if not filled:
        return ()
    new_keys = _keys(session, principal.organisation_id, clean, only=filled)
    _refuse_duplicates(session, principal.organisation_id, new_keys, ignore_lead=lead.id)
    for name in filled:
        setattr(lead, name, clean[name])
    if "email" in filled:
        lead.email_norm = normalise_email(lead.email or "")
    session.add_all(LeadUniqueKey(organisation_id=principal.organisation_id, lead_id=lead.id, field=n, value_norm=v) for n, v in new_keys)
    session.flush()
    return filled


def save_from_draft(
    session: Session,
    principal: Principal,
    values: Mapping[str, object],
    *,
    message_key: str | None,
    update_existing_id: int | None = None,
    source: str = "widget",
) -> SaveResult:
    """The widget's Save. The same message saved twice (or by 20 requests at once) gives one
    lead; `update_existing_id` fills that lead's empty fields instead of creating one."""
    already = captured_lead(session, principal, message_key)
    if already is not None:
        return SaveResult(already, "already_captured")
    if update_existing_id is not None:
        lead = get_lead(session, principal, update_existing_id)
        with session.begin_nested():
            filled = fill_empty_fields(session, principal, lead, values)
            _link_capture(session, principal, lead, message_key)
            session.flush()
        return SaveResult(lead, "updated", filled)
    try:
        return SaveResult(create_lead(session, principal, values, source=source, message_key=message_key), "created")
    except Conflict:
        # Saved by a concurrent request for the same message (its lead now holds the email):
        # that is the lead this message made, not a duplicate.
        winner = captured_lead(session, principal, message_key)
        if winner is not None:
            return SaveResult(winner, "already_captured")
        raise


def update_lead(session: Session, principal: Principal, lead_id: int, values: Mapping[str, object]) -> Lead:
    """Change the given fields (None clears one); unique keys follow the new values."""
    lead = get_lead(session, principal, lead_id)
    clean = clean_values(values)
    changed = {name: clean[name] for name in values}
    merged = {name: (changed[name] if name in changed else getattr(lead, name)) for name in LEAD_FIELDS}
    keys = _keys(session, principal.organisation_id, merged)
    _refuse_duplicates(session, principal.organisation_id, keys, ignore_lead=lead.id)
    try:
        with session.begin_nested():
            for name, value in changed.items():
                setattr(lead, name, value)
            lead.email_norm = normalise_email(lead.email) if lead.email else None
            for row in session.scalars(select(LeadUniqueKey).where(LeadUniqueKey.lead_id == lead.id)):
                session.delete(row)
            session.flush()
            session.add_all(LeadUniqueKey(organisation_id=principal.organisation_id, lead_id=lead.id, field=n, value_norm=v) for n, v in keys)
            session.flush()
    except IntegrityError:
        session.refresh(lead)
        _refuse_duplicates(session, principal.organisation_id, keys, ignore_lead=lead.id)
        raise Conflict("the lead conflicts with a record saved at the same time") from None
    return lead


def set_status(session: Session, principal: Principal, lead_id: int, status: str) -> Lead:
    """Move the lead to another stage, onto its timeline in the same transaction (a
    "status" entry "open → contacted"). Setting the stage it has changes nothing; a converted
    lead is the contact's now and keeps its stage (Conflict)."""
    if status not in LEAD_STATUSES:
        raise InvalidInput(f"a lead's status is one of {', '.join(LEAD_STATUSES)}", code="unknown_lead_status")
    # Locked (PostgreSQL; SQLite's writer already is alone): two changes at once each
    # record the stage the other left, never both "open → …".
    lead = session.get(Lead, lead_id, with_for_update=True, populate_existing=True)
    if lead is None or lead.organisation_id != principal.organisation_id:
        raise NotFound(f"no lead {lead_id}")
    if lead.status == CONVERTED:
        raise Conflict("the lead is already converted", existing_id=lead.id, field="status", code="already_converted")
    if lead.status == status:
        return lead
    previous, lead.status = lead.status, status
    timeline.add_entry(session, lead, "status", summary=f"{previous} → {status}", payload={"from": previous, "to": status}, user_id=principal.user_id)
    session.flush()
    return lead


def list_leads(session: Session, principal: Principal, *, limit: int = 50, offset: int = 0, email: str | None = None) -> tuple[list[Lead], int]:
    query = select(Lead).where(Lead.organisation_id == principal.organisation_id)
    if email:
        query = query.where(Lead.email_norm == (normalise_email(email) or email.lower()))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def existing_records(db: Session | Connection, principal: Principal, email: str | None) -> list[dict[str, object]]:
    """Leads and contacts of the organisation with the sender's normalised address."""
    norm = normalise_email(email) if email else None
    if not norm:
        return []
    return [_record_of(row) for row in connection_of(db).execute(_RECORDS_OF_EMAIL, {"org": principal.organisation_id, "norm": norm})]


def captured_and_existing(db: Session | Connection, principal: Principal, message_key: str | None, email: str | None) -> tuple[Lead | None, list[dict[str, object]]]:
    """captured_lead and existing_records (the same answers), in one round trip when both
    are asked: the draft needs both for every message opened."""
    norm = normalise_email(email) if email else None
    if not message_key or not norm:
        return captured_lead(db, principal, message_key), existing_records(db, principal, email)
    if isinstance(db, Session):
        db.flush()  # as captured_lead: a capture added in this session is seen
    rows = connection_of(db).execute(_CAPTURE_AND_RECORDS, {"org": principal.organisation_id, "norm": norm, "key": message_key}).all()
    lead_id = rows[-1].id if rows and rows[-1].ord == 2 else None
    return _lead_of(db, lead_id) if lead_id else None, [_record_of(row) for row in rows if row.ord != 2]


def _record_of(row: Row[Any]) -> dict[str, object]:
    if row.ord == 0:  # as lead_summary() shows a lead
        return {"kind": "lead", "id": row.id, **{name: getattr(row, name) for name in LEAD_FIELDS}, "status": row.status}
    return {"kind": "contact", "id": row.id, **{name: getattr(row, name) for name in _CONTACT_COLUMNS}, "account_id": row.account_id}


def set_unique(session: Session, principal: Principal, field: str, unique: bool) -> None:
    """Turn "do not allow duplicate values" on or off for a standard field. Turning it on
    fails with Conflict when existing leads already share a value (they are named)."""
    if field not in LEAD_FIELDS or field == "description":
        raise InvalidInput(f"{field!r} cannot be a unique field")
    org = principal.organisation_id
    setting = session.scalar(select(FieldSetting).where(FieldSetting.organisation_id == org, FieldSetting.field == field))
    if setting is None:
        setting = FieldSetting(organisation_id=org, field=field, unique=False)
        session.add(setting)
    if unique and not setting.unique:
        seen: dict[str, int] = {}
        rows = []
        for lead_id, value in session.execute(select(Lead.id, getattr(Lead, field)).where(Lead.organisation_id == org)):
            norm = normalise_unique_value(field, value)
            if not norm:
                continue
            if norm in seen:
                raise Conflict(f"leads {seen[norm]} and {lead_id} share this {field}", existing_id=seen[norm], field=field)
            seen[norm] = lead_id
            rows.append(LeadUniqueKey(organisation_id=org, lead_id=lead_id, field=field, value_norm=norm))
        session.add_all(rows)
    elif not unique and setting.unique:
        for row in session.scalars(select(LeadUniqueKey).where(LeadUniqueKey.organisation_id == org, LeadUniqueKey.field == field)):
            session.delete(row)
    setting.unique = unique
    session.flush()


def captures_of(session: Session, principal: Principal, lead_id: int) -> list[MessageCapture]:
    """The messages the lead was captured from (the widget's saves), oldest first."""
    return list(
        session.scalars(
            select(MessageCapture).where(MessageCapture.organisation_id == principal.organisation_id, MessageCapture.lead_id == lead_id).order_by(MessageCapture.id)
        )
    )
