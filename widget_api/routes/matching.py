"""The panel's records: who the sender matches, a search for anyone else, and filling a
matched record's empty fields from the draft."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.search import MAX_QUERY
from crm.services import matching
from widget_api.deps import CurrentUser, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, LeadFields, Offset

router = PrefixRouter(prefix="/api/v1", tags=["matching"], responses=responses(400, 404, 409))

SINGULAR = {"leads": "lead", "contacts": "contact", "accounts": "account"}


class MatchesOut(BaseModel):
    email: str
    matches: list[dict[str, Any]]


class SearchOut(BaseModel):
    items: list[dict[str, Any]]
    limit: int
    offset: int
    more: bool


class FillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: LeadFields = Field(description="the draft's values; only the record's empty fields take them")


class FillOut(BaseModel):
    record: dict[str, Any]
    filled: list[str]
    kept: list[str] = Field(description="fields the draft had a value for that the record already holds: never overwritten")


@router.get("/matches")
def matches(email: Annotated[str, Query(min_length=3, max_length=320)], session: SessionDep, principal: CurrentUser) -> MatchesOut:
    return MatchesOut(email=email, matches=matching.matches(session, principal, email))


@router.get("/search")
def search(
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY)],
    session: SessionDep,
    principal: CurrentUser,
    types: Annotated[str, Query(max_length=40, pattern=r"^(lead|contact|account)(,(lead|contact|account))*$")] = "lead,contact,account",
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    offset: Offset = 0,
) -> SearchOut:
    items, more = matching.search(session, principal, q, types.split(","), limit=limit, offset=offset)
    return SearchOut(items=items, limit=limit, offset=offset, more=more)


@router.post("/{kind}/{record_id}/empty-fields")
def fill_empty(kind: Literal["leads", "contacts", "accounts"], record_id: Id, body: FillIn, session: SessionDep, principal: CurrentUser) -> FillOut:
    values = body.values.model_dump(exclude_none=True)
    record, filled, kept = matching.fill_empty(session, principal, SINGULAR[kind], record_id, values)
    return FillOut(record=matching.record_out(session, principal, record), filled=list(filled), kept=list(kept))
