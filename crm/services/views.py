"""Custom views: saved filters over standard and custom lead fields, sorted and paged,
private or shared. The filter language is crm.domain.filters; here a filter becomes one SQL
WHERE clause, a custom field an IN over its indexed typed column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from crm.domain import filters as f
from crm.domain.errors import InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.services.custom_fields import fields as custom_fields
from crm.store.custom_fields import CustomField, CustomValue, SavedView
from crm.store.db import among, id_chunks
from crm.store.models import Lead


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compare(column: Any, node: f.Condition, values: list[Any]) -> ColumnElement[bool]:
    if isinstance(node, f.Equals):
        return column == values[0]
    if isinstance(node, f.TextMatch):
        return column.like(f"{'%' if node.op == 'contains' else ''}{_escape(values[0])}%", escape="\\")
    if isinstance(node, f.In):
        return column.in_(values)
    assert isinstance(node, f.Between)
    return column.between(values[0], values[1])


def _typed_values(field: CustomField, node: f.Condition) -> list[Any]:
    """The condition's values as the custom field's column holds them."""
    if field.type in ("number", "date") and isinstance(node, f.TextMatch):
        raise InvalidInput(f"{field.key}: {node.op} applies to text fields only")
    out: list[Any] = []
    for value in node.values():
        if field.type == "number":
            try:
                out.append(float(value))
            except ValueError:
                raise InvalidInput(f"{field.key}: {value!r} is not a number") from None
        elif not isinstance(value, str):
            raise InvalidInput(f"{field.key} holds {'dates' if field.type == 'date' else 'text'}: {value!r} is not a string")
        elif field.type == "date":
            try:
                out.append(date.fromisoformat(value))
            except ValueError:
                raise InvalidInput(f"{field.key}: {value!r} is not a date (YYYY-MM-DD)") from None
        else:
            out.append(value)
    return out


def _condition(node: f.Filter, custom: dict[str, CustomField]) -> ColumnElement[bool]:
    if isinstance(node, f.Group):
        parts = [_condition(child, custom) for child in node.conditions]
        return and_(*parts) if node.op == "and" else or_(*parts)
    key = node.custom_key
    if key is not None:
        field = custom.get(key)
        if field is None:
            raise InvalidInput(f"unknown custom field {key!r}")
        if isinstance(node, f.IsEmpty):
            return ~exists().where(CustomValue.lead_id == Lead.id, CustomValue.field_id == field.id)
        column = {"number": CustomValue.number_value, "date": CustomValue.date_value}.get(field.type, CustomValue.text_value)
        # IN over the (field, value, lead) index: the matching leads come from the index, not
        # from probing every lead of the organisation.
        return Lead.id.in_(select(CustomValue.lead_id).where(CustomValue.field_id == field.id, _compare(column, node, _typed_values(field, node))))
    column = getattr(Lead, node.field)
    if isinstance(node, f.IsEmpty):
        return or_(column.is_(None), column == "")
    return _compare(column, node, node.values())


def query_leads(
    session: Session, principal: Principal, filters: f.Filter | None, sort: Sequence[f.SortKey] = f.DEFAULT_SORT, *, limit: int = 50, offset: int = 0
) -> tuple[list[Lead], int | None]:
    """A page of the organisation's leads matching `filters`; the total only for the first page
    (counting a million matches on every page turn is the slow part of a list)."""
    custom = custom_fields(session, principal)
    where = [Lead.organisation_id == principal.organisation_id]
    if filters is not None:
        where.append(_condition(filters, custom))
    order = [getattr(Lead, s.field).desc() if s.desc else getattr(Lead, s.field).asc() for s in sort or f.DEFAULT_SORT]
    order.append(Lead.id.desc())
    rows = list(session.scalars(select(Lead).where(*where).order_by(*order).limit(limit).offset(offset)))
    total = session.scalar(select(func.count()).select_from(Lead).where(*where)) if offset == 0 else None
    return rows, total


def matching_ids(session: Session, principal: Principal, filters: f.Filter | None, lead_ids: Sequence[int]) -> list[int]:
    """The ids among `lead_ids` of the organisation's leads that match `filters`, in id
    order: the filter runs as one SQL WHERE over the whole batch (workflow rules ask this of
    every import's new leads), never lead by lead."""
    custom = custom_fields(session, principal)
    where = [Lead.organisation_id == principal.organisation_id]
    if filters is not None:
        where.append(_condition(filters, custom))
    out: list[int] = []
    for chunk in id_chunks(session, sorted(set(lead_ids))):
        out.extend(session.scalars(select(Lead.id).where(*where, among(session, Lead.id, chunk)).order_by(Lead.id)))
    return out


def stored_query(view: SavedView) -> tuple[f.Filter | None, list[f.SortKey]]:
    """A saved view's filter and sort, read back through the language's types. A row saved
    before the language was typed that no longer reads is reported, never a 5xx."""
    try:
        filters = f.FILTER.validate_python(view.filters) if view.filters else None
        return filters, f.SORT.validate_python(view.sort or [])
    except ValidationError:
        raise InvalidInput(f"the filter of view {view.id} is not valid any more: save the view again", code="invalid_view") from None


def save_view(session: Session, principal: Principal, name: str, filters: f.Filter | None, sort: Sequence[f.SortKey], shared: bool) -> SavedView:
    query_leads(session, principal, filters, sort, limit=1)  # refuse a view that cannot run
    view = SavedView(
        organisation_id=principal.organisation_id, owner_id=principal.user_id, name=name.strip() or "view", shared=shared,
        filters=f.FILTER.dump_python(filters, mode="json") if filters is not None else {}, sort=f.SORT.dump_python(list(sort), mode="json"),
    )
    session.add(view)
    session.flush()
    return view


def view_leads(session: Session, principal: Principal, view_id: int, *, limit: int = 50, offset: int = 0) -> tuple[list[Lead], int | None]:
    """A page of a saved view's leads."""
    filters, sort = stored_query(get_view(session, principal, view_id))
    return query_leads(session, principal, filters, sort, limit=limit, offset=offset)


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
