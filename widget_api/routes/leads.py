"""Save a lead from the edited draft, read, list and edit leads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from crm.services import custom_fields, leads, rules
from widget_api.deps import CurrentUser, ReadSessionDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, LeadCreate, LeadPage, LeadRead, LeadSaved, LeadStatusIn, LeadUpdate, Offset

router = PrefixRouter(prefix="/api/v1/leads", tags=["leads"], responses=responses(400, 404, 409))

FIELDS_ONLY = {"message", "update_existing_id", "custom"}


@router.post("", status_code=status.HTTP_201_CREATED, responses={200: {"model": LeadSaved, "description": "already captured, or an existing lead updated"}})
def save(body: LeadCreate, response: Response, session: SessionDep, principal: CurrentUser) -> LeadSaved:
    values = body.model_dump(exclude=FIELDS_ONLY)
    key = body.message.key() if body.message else None
    result = leads.save_from_draft(session, principal, values, message_key=key, update_existing_id=body.update_existing_id, source="widget" if body.message else "api")
    if result.outcome == "created":
        # Required custom fields are checked here too: a failure rolls the whole save back.
        custom_fields.set_values(session, principal, result.lead.id, body.custom or {}, creating=True)
        rules.on_leads_created(session, principal, [result.lead.id], result.lead.source)
    else:
        response.status_code = status.HTTP_200_OK
    return LeadSaved(outcome=result.outcome, lead=LeadRead.model_validate(result.lead), filled=list(result.filled))  # type: ignore[arg-type]


@router.get("")
def list_leads(
    session: ReadSessionDep,
    principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> LeadPage:
    rows, total = leads.list_leads(session, principal, limit=limit, offset=offset, email=email)
    return LeadPage(items=[LeadRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{lead_id}")
def read(lead_id: Id, session: ReadSessionDep, principal: CurrentUser) -> LeadRead:
    return LeadRead.model_validate(leads.get_lead(session, principal, lead_id))


@router.patch("/{lead_id}")
def update(lead_id: Id, body: LeadUpdate, session: SessionDep, principal: CurrentUser) -> LeadRead:
    return LeadRead.model_validate(leads.update_lead(session, principal, lead_id, body.model_dump(exclude_unset=True)))


@router.put("/{lead_id}/status")
def set_status(lead_id: Id, body: LeadStatusIn, session: SessionDep, principal: CurrentUser) -> LeadRead:
    """Move the lead to another stage; the change is a "status" entry on its timeline. A
    converted lead keeps its stage (409 `already_converted`): the conversion sets that one."""
    return LeadRead.model_validate(leads.set_status(session, principal, lead_id, body.status))
