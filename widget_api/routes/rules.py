"""Workflow rules (admins write, everyone reads): when a lead is created from one of the
sources and matches the conditions (the view filter language), mail it a template after a
delay. The dry run says whom the rule would mail and whom it skips, and enqueues nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import status
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.filters import Filter
from crm.services import rules
from widget_api.deps import AdminUser, CurrentUser, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

router = PrefixRouter(prefix="/api/v1/rules", tags=["automatic mail"], responses=responses(400, 403, 404, 409))

Source = Literal["widget", "web_form", "csv_import", "api"]


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    sources: list[Source] | None = Field(default=None, min_length=1, max_length=4, description="the lead sources that trigger the rule")
    conditions: Filter | None = Field(default=None, description="the filter language of views (crm.domain.filters); none: every lead")
    template_id: Id | None = None
    delay_minutes: int | None = Field(default=None, ge=0, le=rules.MAX_DELAY_MINUTES)
    paused: bool | None = None


class RuleIn(RuleUpdate):
    name: str = Field(min_length=1, max_length=200)
    sources: list[Source] = Field(min_length=1, max_length=4)
    template_id: Id
    delay_minutes: int = Field(default=0, ge=0, le=rules.MAX_DELAY_MINUTES)
    paused: bool = False


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    sources: list[str]
    conditions: dict[str, Any] | None
    template_id: int
    delay_minutes: int
    paused: bool
    created_at: datetime
    updated_at: datetime


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead_ids: list[Id] | None = Field(default=None, max_length=10_000, description="default: the organisation's latest 1,000 leads of the rule's sources")


class WouldMail(BaseModel):
    lead_id: int
    to: str
    subject: str
    not_before: datetime | None


class WouldSkip(BaseModel):
    lead_id: int
    email: str | None
    reason: str


class DryRunOut(BaseModel):
    would_mail: list[WouldMail]
    skipped: list[WouldSkip]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: RuleIn, session: SessionDep, principal: AdminUser) -> RuleRead:
    return RuleRead.model_validate(rules.create_rule(session, principal, {**body.model_dump(exclude={"conditions"}), "conditions": body.conditions}))


@router.get("")
def list_rules(session: SessionDep, principal: CurrentUser) -> list[RuleRead]:
    return [RuleRead.model_validate(r) for r in rules.list_rules(session, principal)]


@router.get("/{rule_id}")
def read(rule_id: Id, session: SessionDep, principal: CurrentUser) -> RuleRead:
    return RuleRead.model_validate(rules.get_rule(session, principal, rule_id))


@router.patch("/{rule_id}")
def update(rule_id: Id, body: RuleUpdate, session: SessionDep, principal: AdminUser) -> RuleRead:
    values: dict[str, object] = {k: getattr(body, k) for k in body.model_fields_set}
    for required in ("name", "sources", "template_id", "delay_minutes", "paused"):
        if values.get(required, "") is None:
            values.pop(required)
    return RuleRead.model_validate(rules.update_rule(session, principal, rule_id, values))


@router.post("/{rule_id}/pause")
def pause(rule_id: Id, session: SessionDep, principal: AdminUser) -> RuleRead:
    return RuleRead.model_validate(rules.set_paused(session, principal, rule_id, True))


@router.post("/{rule_id}/resume")
def resume(rule_id: Id, session: SessionDep, principal: AdminUser) -> RuleRead:
    return RuleRead.model_validate(rules.set_paused(session, principal, rule_id, False))


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(rule_id: Id, session: SessionDep, principal: AdminUser) -> None:
    rules.delete_rule(session, principal, rule_id)


@router.post("/{rule_id}/dry-run")
def dry_run(rule_id: Id, body: DryRunIn, session: SessionDep, principal: AdminUser) -> DryRunOut:
    plan = rules.dry_run(session, principal, rule_id, body.lead_ids)
    return DryRunOut(
        would_mail=[WouldMail(lead_id=m.lead_id, to=m.to_address, subject=m.mail.subject, not_before=m.not_before) for m in plan.mails],
        skipped=[WouldSkip(lead_id=s.lead_id, email=s.email, reason=s.reason) for s in plan.skipped],
    )
