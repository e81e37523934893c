"""Organisation settings an admin manages: which lead fields refuse duplicate values, and
what a web form submission does to the lead that already has its address."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crm.domain.drafts import LEAD_FIELDS
from crm.services import leads, web_forms
from widget_api.deps import AdminUser, CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import UniqueFieldIn

router = PrefixRouter(prefix="/api/v1/settings", tags=["settings"], responses=responses(400, 403, 409))


@router.get("/unique-fields")
def unique_fields(session: ReadSessionDep, principal: CurrentUser) -> dict[str, bool]:
    unique = leads.unique_fields(session, principal.organisation_id)
    return {name: name in unique for name in LEAD_FIELDS if name != "description"}


@router.put("/unique-fields/{field}")
def set_unique_field(field: str, body: UniqueFieldIn, session: SessionDep, principal: AdminUser) -> dict[str, bool]:
    leads.set_unique(session, principal, field, body.unique)
    return unique_fields(session, principal)


class FormDuplicatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_duplicate: Literal["fill", "replace", "keep"] = Field(
        description="the existing lead with the submitted address: fill its empty fields, replace its values with the submitted ones (blank answers clear nothing), or keep it untouched"
    )


class FormDuplicatesRead(BaseModel):
    on_duplicate: str = Field(description="forms whose own on_duplicate is inherit follow this; the CSV import and the API's save keep their own rules")


@router.get("/form-duplicates")
def form_duplicates(session: ReadSessionDep, principal: CurrentUser) -> FormDuplicatesRead:
    return FormDuplicatesRead(on_duplicate=web_forms.duplicate_policy(session, principal.organisation_id))


@router.put("/form-duplicates")
def set_form_duplicates(body: FormDuplicatesIn, session: SessionDep, principal: AdminUser) -> FormDuplicatesRead:
    return FormDuplicatesRead(on_duplicate=web_forms.set_duplicate_policy(session, principal, body.on_duplicate))
