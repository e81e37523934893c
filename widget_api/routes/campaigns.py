"""Campaigns: create with member statuses, add leads (from a lead, in bulk from the lead list,
or from the campaign's side: the same call), change a member's status, list the campaigns and
read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, status
from pydantic import BaseModel, ConfigDict, Field

from crm.services import campaigns
from widget_api.deps import CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, Offset

router = PrefixRouter(tags=["campaigns"], responses=responses(400, 404, 409))
BASE = "/api/v1/campaigns"


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    is_default: bool = False
    responded: bool = False


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    statuses: list[StatusIn] = Field(default_factory=list, max_length=50)


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead_ids: list[Id] = Field(min_length=1, max_length=200_000)
    status: str | None = Field(default=None, max_length=100, description="default: the campaign's default status")
    update_status: bool = Field(default=False, description="change the status of leads already members")


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(min_length=1, max_length=100)


@router.post(BASE, status_code=status.HTTP_201_CREATED)
def create(body: CampaignIn, session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    specs = [campaigns.StatusSpec(s.name, s.is_default, s.responded) for s in body.statuses]
    campaign = campaigns.create_campaign(session, principal, body.name, specs)
    return campaigns.summary(session, principal, campaign.id)


@router.get(BASE)
def list_campaigns(session: ReadSessionDep, principal: CurrentUser) -> list[dict[str, object]]:
    """The organisation's campaigns, newest first: what "add to campaign" offers."""
    return campaigns.listing(session, principal)


@router.get(BASE + "/{campaign_id}")
def read(
    campaign_id: Id, session: ReadSessionDep, principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> dict[str, object]:
    return campaigns.summary(session, principal, campaign_id, limit=limit, offset=offset)


@router.post(BASE + "/{campaign_id}/members")
def add_members(campaign_id: Id, body: MembersIn, session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    report = campaigns.add_leads(session, principal, campaign_id, body.lead_ids, status=body.status, update_status=body.update_status)
    counts: dict[str, int] = {}
    for outcome in report.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"counts": counts, "leads": {str(k): v for k, v in report.items()}}


@router.put(BASE + "/{campaign_id}/members/{lead_id}")
def change_status(campaign_id: Id, lead_id: Id, body: StatusChangeIn, session: SessionDep, principal: CurrentUser) -> dict[str, object]:
    campaigns.set_member_status(session, principal, campaign_id, lead_id, body.status)
    return {"history": history(campaign_id, lead_id, session, principal)}


@router.get(BASE + "/{campaign_id}/members/{lead_id}/history")
def history(campaign_id: Id, lead_id: Id, session: ReadSessionDep, principal: CurrentUser) -> list[dict[str, object]]:
    return campaigns.history(session, principal, campaign_id, lead_id)


class LeadCampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: Id
    status: str | None = Field(default=None, max_length=100)


@router.post("/api/v1/leads/{lead_id}/campaigns")
def add_from_lead(lead_id: Id, body: LeadCampaignIn, session: SessionDep, principal: CurrentUser) -> dict[str, str]:
    """From the lead's page: add this lead to a campaign."""
    report = campaigns.add_leads(session, principal, body.campaign_id, [lead_id], status=body.status)
    return {"outcome": report[lead_id]}

