"""What a stored lead value may be: the one check every way of writing a lead passes (the
API, the widget's save, the CSV import, a merge into an existing lead, an update), so that
no stored value can break a later read or export of the organisation's leads."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Literal, get_args

from email_validator import EmailNotValidError

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import InvalidInput
from crm.domain.rules import checked_email

MAX_LENGTHS: Mapping[str, int] = {
    "first_name": 100, "last_name": 100, "email": 320, "company": 255, "title": 128, "phone": 40, "mobile": 40, "website": 255,
    "street": 255, "city": 100, "state": 100, "zip_code": 20, "country": 100, "description": 32000,
}
MULTI_LINE = frozenset({"description"})
# A lead's stages a rep sets; "converted" is set by the conversion only (it makes the contact).
LeadStatus = Literal["open", "contacted", "qualified", "unqualified"]
LEAD_STATUSES: tuple[str, ...] = get_args(LeadStatus)
CONVERTED = "converted"
_LINE_BREAKS = "\n\r"
# Control characters (NUL, ESC…), lone surrogates (no database stores them), line and
# paragraph separators; a tab is harmless in a line.
_REFUSED = frozenset({"Cc", "Cs", "Zl", "Zp"})


def value_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be stored in lead field `name`, or None."""
    if len(value) > MAX_LENGTHS[name]:
        return f"{name} is longer than {MAX_LENGTHS[name]} characters"
    allowed = "\t" + (_LINE_BREAKS if name in MULTI_LINE else "")
    if any(unicodedata.category(ch) in _REFUSED and ch not in allowed for ch in value):
        return f"{name} must be {'text' if name in MULTI_LINE else 'a single line'} without control characters"
    if name == "email":
        try:
            checked_email(value)
        except EmailNotValidError as exc:
            return f"email: {exc}"
    return None


def checked_value(name: str, value: object) -> str | None:
    """The value as stored: trimmed, None when blank, the email as email-validator writes
    it. InvalidInput when it cannot be stored."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    problem = value_problem(name, text)
    if problem:
        raise InvalidInput(problem, code="invalid_field")
    return checked_email(text) if name == "email" else text


def checked_values(values: Mapping[str, object]) -> dict[str, str | None]:
    """Every standard field, checked; unknown names refused."""
    unknown = set(values) - set(LEAD_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown lead fields: {', '.join(sorted(unknown))}")
    return {name: checked_value(name, values.get(name)) for name in LEAD_FIELDS}
