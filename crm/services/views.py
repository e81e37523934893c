"""Custom views: saved filters over standard and custom lead fields, sorted and paged,
private or shared. A filter is a tree:

    {"op": "and" | "or", "conditions": [
        {"field": "company" | "custom:<key>", "op": "equals" | "contains" | "starts_with" |
         "is_empty" | "in" | "between", "value": …},
        {"op": "or", "conditions": [...]}]}

It becomes one SQL WHERE clause; a custom field is an IN over its indexed typed column.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.services.custom_fields import fields as custom_fields
from crm.store.custom_fields import CustomField, CustomValue, SavedView
from crm.store.models import Lead

OPERATORS = ("equals", "contains", "starts_with", "is_empty", "in", "between")
SORTABLE = (*LEAD_FIELDS, "created_at", "updated_at", "id")
MAX_DEPTH = 5


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "equals":
        return column == value
    if op == "contains":
        return column.like(f"%{_escape(str(value))}%", escape="\\")
    if op == "starts_with":
        return column.like(f"{_escape(str(value))}%", escape="\\")
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise InvalidInput("'in' takes a list of 1 to 1000 values")
        return column.in_(value)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidInput("'between' takes [low, high]")
        return column.between(value[0], value[1])
    raise InvalidInput(f"operator must be one of {', '.join(OPERATORS)}")


def _typed_value(field: CustomField, value: Any) -> Any:
    convert = {"number": float, "date": date.fromisoformat}.get(field.type, str)
    try:
        return [convert(v) for v in value] if isinstance(value, list) else (None if value is None else convert(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"{field.key}: bad value {value!r}") from None


def _condition(node: dict[str, Any], custom: dict[str, CustomField], depth: int) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:
        raise InvalidInput("filters nest at most 5 levels")
    if "conditions" in node:
        parts = [_condition(c, custom, depth + 1) for c in node.get("conditions") or []]
        if not parts:
            raise InvalidInput("a group needs conditions")
        return and_(*parts) if node.get("op", "and") == "and" else or_(*parts)
    name, op, value = node.get("field", ""), node.get("op", ""), node.get("value")
    if op not in OPERATORS:
        raise InvalidInput(f"operator must be one of {', '.join(OPERATORS)}")
    if name.startswith("custom:"):
        field = custom.get(name[7:])
        if field is None:
            raise InvalidInput(f"unknown custom field {name[7:]!r}")
        column = {"number": CustomValue.number_value, "date": CustomValue.date_value}.get(field.type, CustomValue.text_value)
        if op == "is_empty":
            return ~exists().where(CustomValue.lead_id == Lead.id, CustomValue.field_id == field.id)
        # IN over the (field, value, lead) index: the matching leads come from the index, not
        # from probing every lead of the organisation.
        return Lead.id.in_(select(CustomValue.lead_id).where(CustomValue.field_id == field.id, _compare(column, op, _typed_value(field, value))))
    if name not in LEAD_FIELDS:
        raise InvalidInput(f"unknown field {name!r}")
    column = getattr(Lead, name)
    if op == "is_empty":
        return or_(column.is_(None), column == "")
    return _compare(column, op, value)


def query_leads(
    session: Session, principal: Principal, filters: dict[str, Any] | None, sort: list[dict[str, Any]] | None, *, limit: int = 50, offset: int = 0
) -> tuple[list[Lead], int | None]:
    """A page of the organisation's leads matching `filters`; the total only for the first page
    (counting a million matches on every page turn is the slow part of a list)."""
    custom = custom_fields(session, principal)
    where = [Lead.organisation_id == principal.organisation_id]
    if filters:
        where.append(_condition(filters, custom, 0))
    order = []
    for s in sort or [{"field": "created_at", "desc": True}]:
        if s.get("field") not in SORTABLE:
            raise InvalidInput(f"cannot sort by {s.get('field')!r}")
        column = getattr(Lead, s["field"])
        order.append(column.desc() if s.get("desc") else column.asc())
    order.append(Lead.id.desc())
    rows = list(session.scalars(select(Lead).where(*where).order_by(*order).limit(limit).offset(offset)))
    total = session.scalar(select(func.count()).select_from(Lead).where(*where)) if offset == 0 else None
    return rows, total


def save_view(session: Session, principal: Principal, name: str, filters: dict[str, Any], sort: list[dict[str, Any]], shared: bool) -> SavedView:
    query_leads(session, principal, filters, sort, limit=1)  # refuse a view that cannot run
    view = SavedView(organisation_id=principal.organisation_id, owner_id=principal.user_id, name=name.strip() or "view", shared=shared, filters=filters, sort=sort)
    session.add(view)
    session.flush()
    return view


def get_view(session: Session, principal: Principal, view_id: int) -> SavedView:
    view = session.get(SavedView, view_id)
    if view is None or view.organisation_id != principal.organisation_id or not (view.shared or view.owner_id == principal.user_id):
        raise NotFound(f"no view {view_id}")
    return view


def list_views(session: Session, principal: Principal) -> list[SavedView]:
    return list(
        session.scalars(
            select(SavedView).where(SavedView.organisation_id == principal.organisation_id, or_(SavedView.shared.is_(True), SavedView.owner_id == principal.user_id)).order_by(SavedView.id)
        )
    )
