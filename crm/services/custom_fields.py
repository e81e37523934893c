"""Custom lead fields (text, number, date, pick list; required or not; unique or not). A
unique custom field uses the same database-enforced keys as the standard ones
(`lead_unique_keys`, field "custom:<key>")."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.errors import Conflict, InvalidInput
from crm.domain.principal import Principal
from crm.domain.rules import CUSTOM_FIELD_KEY, normalise_unique_value
from crm.services.leads import get_lead, lead_summary
from crm.services.organisations import require_admin
from crm.store.custom_fields import CustomField, CustomValue
from crm.store.models import Lead, LeadUniqueKey

TYPES = ("text", "number", "date", "picklist")
_KEY = re.compile(rf"^{CUSTOM_FIELD_KEY}$")


def define(
    session: Session, principal: Principal, key: str, label: str, type_: str, *, options: list[str] | None = None, required: bool = False, unique: bool = False
) -> CustomField:
    require_admin(principal)
    if not _KEY.match(key):
        raise InvalidInput("a field key is lower-case letters, digits and _ (starting with a letter)")
    if type_ not in TYPES:
        raise InvalidInput(f"type must be one of {', '.join(TYPES)}")
    if type_ == "picklist" and not options:
        raise InvalidInput("a pick list needs options")
    if session.scalar(select(CustomField.id).where(CustomField.organisation_id == principal.organisation_id, CustomField.key == key)):
        raise Conflict(f"a custom field {key!r} exists", field="key")
    field = CustomField(organisation_id=principal.organisation_id, key=key, label=label.strip() or key, type=type_, options=options or [], required=required, unique=unique)
    session.add(field)
    session.flush()
    return field


def fields(session: Session, principal: Principal) -> dict[str, CustomField]:
    rows = session.scalars(select(CustomField).where(CustomField.organisation_id == principal.organisation_id).order_by(CustomField.id))
    return {f.key: f for f in rows}


def typed_value(field: CustomField, value: object) -> tuple[str | None, float | None, date | None]:
    if field.type == "number":
        try:
            number = float(str(value))
        except ValueError:
            raise InvalidInput(f"{field.key}: not a number") from None
        if not math.isfinite(number):  # "nan", "inf", 1e999: no database or JSON answer holds them
            raise InvalidInput(f"{field.key}: not a finite number")
        return None, number, None
    if field.type == "date":
        try:
            return None, None, date.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"{field.key}: not a date (YYYY-MM-DD)") from None
    text = str(value).strip()[:1000]
    if "\x00" in text:  # refused by the store anyway; here a CSV row gets it as its reason
        raise InvalidInput(f"{field.key}: text with a NUL character cannot be stored", code="nul_character")
    if field.type == "picklist" and text not in field.options:
        raise InvalidInput(f"{field.key}: {text!r} is not one of the options")
    return text, None, None


def set_values(session: Session, principal: Principal, lead_id: int, values: Mapping[str, object], *, creating: bool = False) -> dict[str, object]:
    """Set (or clear, with None) custom values of a lead. A required field may not be left
    empty; a unique one may not repeat another lead's value (409 with that lead)."""
    lead = get_lead(session, principal, lead_id)
    defined = fields(session, principal)
    unknown = set(values) - set(defined)
    if unknown:
        raise InvalidInput(f"unknown custom fields: {', '.join(sorted(unknown))}")
    current = {v.field_id: v for v in session.scalars(select(CustomValue).where(CustomValue.lead_id == lead.id))}
    for key, field in defined.items():
        present = values.get(key) not in (None, "") if key in values else field.id in current
        if field.required and not present and (creating or key in values):
            raise InvalidInput(f"{field.label} is required", code="required_field")
    try:
        with session.begin_nested():
            for key, raw in values.items():
                field = defined[key]
                unique_name = f"custom:{key}"
                for old in session.scalars(select(LeadUniqueKey).where(LeadUniqueKey.lead_id == lead.id, LeadUniqueKey.field == unique_name)):
                    session.delete(old)
                row = current.get(field.id)
                if raw in (None, ""):
                    if row is not None:
                        session.delete(row)
                    continue
                text, number, day = typed_value(field, raw)
                if row is None:
                    row = CustomValue(lead_id=lead.id, field_id=field.id)
                    session.add(row)
                row.text_value, row.number_value, row.date_value = text, number, day
                if field.unique:
                    session.flush()
                    norm = normalise_unique_value(unique_name, str(raw))
                    holder = session.scalar(
                        select(LeadUniqueKey.lead_id).where(LeadUniqueKey.organisation_id == principal.organisation_id, LeadUniqueKey.field == unique_name, LeadUniqueKey.value_norm == norm)
                    )
                    if holder is not None and holder != lead.id:
                        other = session.get(Lead, holder)
                        raise Conflict(f"a lead with this {field.label} already exists", existing_id=holder, field=key, existing=lead_summary(other) if other else None)
                    session.add(LeadUniqueKey(organisation_id=principal.organisation_id, lead_id=lead.id, field=unique_name, value_norm=norm))
            session.flush()
    except IntegrityError:
        raise Conflict("a unique custom value was saved by another request at the same time") from None
    return values_of(session, principal, lead.id)


def values_of(session: Session, principal: Principal, lead_id: int) -> dict[str, object]:
    by_id = {f.id: f for f in fields(session, principal).values()}
    out: dict[str, object] = {}
    for v in session.scalars(select(CustomValue).where(CustomValue.lead_id == lead_id)):
        field = by_id.get(v.field_id)
        if field:
            out[field.key] = v.number_value if field.type == "number" else (v.date_value.isoformat() if v.date_value else v.text_value)
    return out
