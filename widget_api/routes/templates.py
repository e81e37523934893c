"""Mail templates (admins write, everyone reads): subject, plain-text and HTML bodies with
merge fields such as {{lead.last_name}} or {{lead.custom.<key>}}; an unknown merge field is
refused with 422 naming it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import status
from pydantic import BaseModel, ConfigDict, Field

from crm.services import templates
from widget_api.deps import AdminUser, CurrentUser, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

router = PrefixRouter(prefix="/api/v1/templates", tags=["automatic mail"], responses=responses(400, 403, 404, 409))

MAX_BODY = 200_000


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    language: Literal["ja", "en"] | None = None
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    text_body: str | None = Field(default=None, max_length=MAX_BODY)
    html_body: str | None = Field(default=None, max_length=MAX_BODY, description="none: plain text only")
    charset: Literal["utf-8", "iso-2022-jp"] | None = None


class TemplateIn(TemplateUpdate):
    name: str = Field(min_length=1, max_length=200)
    language: Literal["ja", "en"] = "ja"
    subject: str = Field(min_length=1, max_length=500)
    text_body: str = Field(max_length=MAX_BODY)
    charset: Literal["utf-8", "iso-2022-jp"] = "utf-8"


class TemplateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    language: str
    subject: str
    text_body: str
    html_body: str | None
    charset: str
    created_at: datetime
    updated_at: datetime


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: TemplateIn, session: SessionDep, principal: AdminUser) -> TemplateRead:
    return TemplateRead.model_validate(templates.create_template(session, principal, body.model_dump()))


@router.get("")
def list_templates(session: SessionDep, principal: CurrentUser) -> list[TemplateRead]:
    return [TemplateRead.model_validate(x) for x in templates.list_templates(session, principal)]


@router.get("/{template_id}")
def read(template_id: Id, session: SessionDep, principal: CurrentUser) -> TemplateRead:
    return TemplateRead.model_validate(templates.get_template(session, principal, template_id))


@router.patch("/{template_id}")
def update(template_id: Id, body: TemplateUpdate, session: SessionDep, principal: AdminUser) -> TemplateRead:
    values = body.model_dump(exclude_unset=True)
    for required in ("name", "subject", "text_body", "language", "charset"):
        if values.get(required, "") is None:
            values.pop(required)  # null for a required field: left as it is
    return TemplateRead.model_validate(templates.update_template(session, principal, template_id, values))


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(template_id: Id, session: SessionDep, principal: AdminUser) -> None:
    templates.delete_template(session, principal, template_id)
