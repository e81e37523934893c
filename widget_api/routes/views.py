"""Custom views over leads: save, list, and read a view's leads (sorted, paged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm.domain.filters import Filter, SortKey
from crm.services import views
from widget_api.deps import CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, LeadRead, Offset

router = PrefixRouter(prefix="/api/v1/views", tags=["views"], responses=responses(400, 404))


class ViewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    filters: Filter | None = Field(default=None, description="the filter language of crm.domain.filters; none: every lead")
    sort: list[SortKey] = Field(default_factory=list, max_length=5)
    shared: bool = False

    @field_validator("filters", mode="before")
    @classmethod
    def empty_means_none(cls, value: object) -> object:
        return None if value == {} else value  # what clients sent for "no filter" before the language was typed


def _view(v: Any) -> dict[str, object]:
    return {"id": v.id, "name": v.name, "shared": v.shared, "owner_id": v.owner_id, "filters": v.filters, "sort": v.sort}


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: ViewIn, session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    return _view(views.save_view(session, principal, body.name, body.filters, body.sort, body.shared))


@router.get("")
def list_views(session: ReadSessionDep, principal: CurrentUser) -> list[dict[str, object]]:
    return [_view(v) for v in views.list_views(session, principal)]


@router.get("/{view_id}/leads")
def view_leads(
    view_id: Id, session: ReadSessionDep, principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> dict[str, object]:
    rows, total = views.view_leads(session, principal, view_id, limit=limit, offset=offset)
    return {"items": [LeadRead.model_validate(r).model_dump(mode="json") for r in rows], "total": total, "limit": limit, "offset": offset}
