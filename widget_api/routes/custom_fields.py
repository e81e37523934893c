"""Custom lead fields (admin) and their values on a lead."""

from __future__ import annotations

from typing import Literal

from fastapi import status
from pydantic import BaseModel, ConfigDict, Field

from crm.services import custom_fields
from widget_api.deps import AdminUser, CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

router = PrefixRouter(prefix="/api/v1", tags=["custom fields"], responses=responses(400, 403, 404, 409))


class FieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=64)
    label: str = Field(default="", max_length=255)
    type: Literal["text", "number", "date", "picklist"]
    options: list[str] = Field(default_factory=list, max_length=200)
    required: bool = False
    unique: bool = False


@router.post("/custom-fields", status_code=status.HTTP_201_CREATED)
def define(body: FieldIn, session: SessionDep, principal: AdminUser) -> dict[str, object]:
    f = custom_fields.define(session, principal, body.key, body.label, body.type, options=body.options, required=body.required, unique=body.unique)
    return {"key": f.key, "label": f.label, "type": f.type, "options": f.options, "required": f.required, "unique": f.unique}


@router.get("/custom-fields")
def list_fields(session: ReadSessionDep, principal: CurrentUser) -> list[dict[str, object]]:
    return [{"key": f.key, "label": f.label, "type": f.type, "options": f.options, "required": f.required, "unique": f.unique} for f in custom_fields.fields(session, principal).values()]


@router.put("/leads/{lead_id}/custom")
def set_values(lead_id: Id, body: dict[str, object], session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    return custom_fields.set_values(session, principal, lead_id, body)


@router.get("/leads/{lead_id}/custom")
def get_values(lead_id: Id, session: ReadSessionDep, principal: CurrentUser) -> dict[str, object]:
    from crm.services.leads import get_lead

    return custom_fields.values_of(session, principal, get_lead(session, principal, lead_id).id)
