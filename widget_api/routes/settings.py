"""Organisation settings an admin manages: which lead fields refuse duplicate values."""

from __future__ import annotations

from fastapi import APIRouter

from crm.domain.drafts import LEAD_FIELDS
from crm.services import leads
from widget_api.deps import AdminUser, CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.schemas import UniqueFieldIn

router = APIRouter(prefix="/api/v1/settings", tags=["settings"], responses=responses(400, 403, 409))


@router.get("/unique-fields")
def unique_fields(session: ReadSessionDep, principal: CurrentUser) -> dict[str, bool]:
    unique = leads.unique_fields(session, principal.organisation_id)
    return {name: name in unique for name in LEAD_FIELDS if name != "description"}


@router.put("/unique-fields/{field}")
def set_unique_field(field: str, body: UniqueFieldIn, session: SessionDep, principal: AdminUser) -> dict[str, bool]:
    leads.set_unique(session, principal, field, body.unique)
    return unique_fields(session, principal)
