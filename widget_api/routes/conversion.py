"""Lead conversion: preview the matching accounts, then convert in one transaction; the
organisation's rules for what makes an account "the same company" (admin)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crm.services import conversion
from widget_api.deps import AdminUser, CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

router = PrefixRouter(prefix="/api/v1", tags=["conversion"], responses=responses(400, 403, 404, 409))


class ConvertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: Id | None = Field(default=None, description="link the contact to this existing account (from the preview)")
    create_deal: bool = False
    deal_name: str | None = Field(default=None, max_length=255)
    deal_amount: float | None = Field(default=None, ge=0, lt=10**12, allow_inf_nan=False, description="stored as NUMERIC(14, 2)")


@router.get("/leads/{lead_id}/conversion")
def preview(lead_id: Id, session: ReadSessionDep, principal: CurrentUser) -> dict[str, object]:
    return conversion.preview(session, principal, lead_id)


@router.post("/leads/{lead_id}/conversion", status_code=201)
def convert(lead_id: Id, body: ConvertIn, session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    done = conversion.convert(session, principal, lead_id, account_id=body.account_id, create_deal=body.create_deal, deal_name=body.deal_name, deal_amount=body.deal_amount)
    return {"lead_id": done.lead_id, "account_id": done.account_id, "contact_id": done.contact_id, "deal_id": done.deal_id}


class MatchingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match_company_name: bool = True
    match_email_domain: bool = True
    company_key_field: str | None = Field(default=None, min_length=1, max_length=64, description="key of a custom lead field holding a company key")


@router.get("/conversion/settings")
def get_settings(session: ReadSessionDep, principal: CurrentUser) -> dict[str, object]:
    return conversion.settings_dict(conversion.settings(session, principal.organisation_id))


@router.put("/conversion/settings")
def put_settings(body: MatchingIn, session: SessionDep, principal: AdminUser) -> dict[str, object]:
    row = conversion.configure(session, principal, match_company_name=body.match_company_name, match_email_domain=body.match_email_domain, company_key_field=body.company_key_field)
    return conversion.settings_dict(row)
